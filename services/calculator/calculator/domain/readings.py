"""Validation of a submitted meter reading (RATING.md §5). Pure: `today` is passed in.

`validate_reading` returns every problem it finds (an empty list means the reading is accepted); a
rejected reading records nothing, and the caller answers with the problems, each a stable `code` plus
string `params` to format a message in the user's language (`message_ru` is the Russian default).

Choices where RATING.md §5 is terse:
- With no previous reading, the meter's installation (`installed_on`, `initial_reading`) stands in
  for it: the value must not be lower than the initial reading (`less_than_initial_reading`, rollover
  excepted), and the implausibility check counts days from the install date.
- After a meter replacement since the previous reading, the value is compared with the new meter's
  initial reading, not with the previous reading (§4.2's replacement formula).
- Implausibility is checked only when the reading passes every other rule, the account has an average
  (`average_daily_kwh` is not None) and at least one day has passed. It is "consumption per day above
  3 × the average", strictly, compared exactly as `q > 3 × average × days`; an average of 0 therefore
  makes any positive consumption need a confirmation.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, cast

from contracts.money import round_half_up

from .errors import RatingError, message_ru
from .quantities import divide
from .rating import MeterReading, MeterReplacement, check_reading_value, consumption_between

ProblemCode = Literal[
    "date_in_future",
    "not_after_previous",
    "before_meter_install",
    "not_a_number",
    "too_many_decimals",
    "negative",
    "exceeds_meter_capacity",
    "less_than_previous",
    "less_than_initial_reading",
    "replacement_inconsistent",
    "meter_serial_mismatch",
    "implausible_consumption",
]

# Consumption per day above this many times the average daily consumption needs a confirmation.
IMPLAUSIBLE_FACTOR = Decimal(3)


@dataclass(frozen=True, slots=True)
class MeterInfo:
    """The account's current meter: serial, whole digits, install date and initial reading."""

    serial: str
    digits: int
    installed_on: dt.date
    initial_reading: Decimal


@dataclass(frozen=True, slots=True)
class ReadingProblem:
    """Why a submitted reading is rejected: a stable `code` and the strings to format its message."""

    code: ProblemCode
    params: dict[str, str] = field(default_factory=dict)

    @property
    def message_ru(self) -> str:
        return message_ru(self.code, self.params)


def _problem(error: RatingError) -> ReadingProblem:
    # The reading-rule codes raised by rating.py are all ProblemCodes.
    return ReadingProblem(cast(ProblemCode, error.code), dict(error.params))


def validate_reading(
    new: MeterReading,
    previous: MeterReading | None,
    meter: MeterInfo,
    today: dt.date,
    average_daily_kwh: Decimal | None,
    confirm_implausible: bool,
    replacement_since_previous: MeterReplacement | None = None,
) -> list[ReadingProblem]:
    """All the problems of the submitted reading `new` under RATING.md §5; `[]` means accept it.

    `meter` is the meter the reading is taken on (after a replacement, the new one); `previous` the
    account's previous accepted reading; `average_daily_kwh` the average daily consumption over the
    last three billed months (`estimates.average_daily_kwh`), None without history.
    """
    problems: list[ReadingProblem] = []
    reading_date = new.date.isoformat()

    # Dates.
    if new.date > today:
        problems.append(
            ReadingProblem("date_in_future", {"reading_date": reading_date, "today": today.isoformat()})
        )
    if previous is not None and new.date <= previous.date:
        problems.append(
            ReadingProblem(
                "not_after_previous",
                {"reading_date": reading_date, "previous_date": previous.date.isoformat()},
            )
        )
    if new.date < meter.installed_on:
        problems.append(
            ReadingProblem(
                "before_meter_install",
                {"reading_date": reading_date, "installed_on": meter.installed_on.isoformat()},
            )
        )

    # The value itself.
    try:
        check_reading_value(new.value, meter.digits)
    except RatingError as error:
        problems.append(_problem(error))
        return problems

    # Lower than the previous only by rollover or after a replacement.
    try:
        if previous is None:
            base_date = meter.installed_on
            try:
                q, _ = consumption_between(meter.initial_reading, new.value, meter.digits)
            except RatingError:
                raise RatingError(
                    "less_than_initial_reading",
                    value=str(new.value),
                    initial_reading=str(meter.initial_reading),
                ) from None
        else:
            base_date = previous.date
            q, _ = consumption_between(previous.value, new.value, meter.digits, replacement_since_previous)
    except RatingError as error:
        problems.append(_problem(error))
        return problems

    # Implausible consumption.
    days = (new.date - base_date).days
    if problems or average_daily_kwh is None or confirm_implausible or days < 1:
        return problems
    if q > IMPLAUSIBLE_FACTOR * average_daily_kwh * days:
        problems.append(
            ReadingProblem(
                "implausible_consumption",
                {
                    "consumption_kwh": str(q),
                    "days": str(days),
                    "daily_kwh": str(round_half_up(divide(q, days))),
                    "average_daily_kwh": str(round_half_up(average_daily_kwh)),
                    "limit_daily_kwh": str(round_half_up(IMPLAUSIBLE_FACTOR * average_daily_kwh)),
                },
            )
        )
    return problems
