"""Submitting a meter reading (RATING.md §5): the customer's through the API, the grid company's from
`backoffice.readings.v1`. One use case for both: validate against the account's state, and on success
append ReadingSubmitted to `meter-readings:{no}` with optimistic concurrency. A rejected reading records
nothing.

Choices:
- The "previous reading" of an account's first reading is its first meter's installation
  (`installed_on`, `initial_reading`); a first reading dated on the install date cannot be rated
  (0 days) and is refused as `not_after_previous`.
- The average for the implausibility check is over the last three billed months before the reading's
  month, from the accepted readings (`domain.reconcile.reading_history`: the history their charges
  have), so the check never depends on how far the rating stream has got.
- A grid reading names its meter. One on a meter that was replaced after the reading's date (the
  MeterReplaced arrived first: there is no order across topics) is validated against that meter, not
  the one in place now; a meter not known yet parks the reading (`NotReady`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from psycopg.errors import UniqueViolation

from calculator.adapters.accounts import AccountRecord, load_facts
from calculator.adapters.own_events import OwnEvents, ReadingRow, load_readings
from calculator.domain.billing import (
    Meter,
    install_point,
    meter_readings_stream,
    period_of,
    period_start,
    replacement_between,
)
from calculator.domain.errors import RatingError
from calculator.domain.estimates import average_daily_kwh
from calculator.domain.rating import MeterReading, consumption_between
from calculator.domain.readings import MeterInfo, ReadingProblem, validate_reading
from calculator.domain.reconcile import reading_history
from contracts.envelope import Envelope
from contracts.events.calculator import ReadingSubmitted
from service_runtime.db import Connection
from service_runtime.eventstore import ConcurrencyError

ALMATY = ZoneInfo("Asia/Almaty")


def today_in_almaty() -> dt.date:
    return dt.datetime.now(ALMATY).date()


@dataclass(frozen=True, slots=True)
class Accepted:
    envelope: Envelope
    reading: ReadingSubmitted
    previous: MeterReading | None
    consumption_kwh: Decimal


@dataclass(frozen=True, slots=True)
class Rejected:
    problems: list[ReadingProblem]


@dataclass(frozen=True, slots=True)
class NotReady:
    """The account or its meter is not known (yet): `account_not_found`, `no_meter`, `meter_unknown`."""

    code: Literal["account_not_found", "no_meter", "meter_unknown"]


class Conflict(Exception):
    """The account's readings kept changing while this one was being validated."""


Outcome = Accepted | Rejected | NotReady


@dataclass(frozen=True, slots=True)
class RatingBase:
    """Where a new reading is rated from: the previous accepted reading, or the first meter's install."""

    previous: MeterReading | None
    base: MeterReading | None


def _in_place_on(meter: Meter, day: dt.date) -> bool:
    return meter.installed_on <= day and (meter.removed_on is None or day <= meter.removed_on)


def rating_base(account: AccountRecord, readings: list[ReadingRow]) -> RatingBase:
    previous = MeterReading(readings[-1].reading_date, readings[-1].value) if readings else None
    return RatingBase(previous, previous or install_point(account.meters))


async def _attempt(
    conn: Connection,
    own: OwnEvents,
    *,
    account_no: str,
    reading_date: dt.date,
    value: Decimal,
    source: Literal["customer", "grid"],
    confirm_implausible: bool,
    reading_id: str,
    new_event_id: uuid.UUID,
    today: dt.date,
    meter_serial: str | None,
) -> Outcome:
    loaded = await load_facts(conn, account_no)
    if loaded is None:
        return NotReady("account_not_found")
    account, facts = loaded
    meter = account.meter
    if meter is None:
        return NotReady("no_meter")
    if meter_serial is not None and meter_serial != meter.serial:
        named = next((m for m in account.meters if m.serial == meter_serial), None)
        if named is None:
            return NotReady("meter_unknown")
        if not _in_place_on(named, reading_date):
            return Rejected(
                [
                    ReadingProblem(
                        "meter_serial_mismatch",
                        {"meter_serial": meter_serial, "current_serial": meter.serial},
                    )
                ]
            )
        meter = named  # a reading on the meter that was in place that day, replaced since
    version = await own.store.stream_version(conn, meter_readings_stream(account_no))
    readings = await load_readings(conn, account_no)
    base = rating_base(account, readings)
    average = average_daily_kwh(reading_history(facts), before=period_start(period_of(reading_date)))
    new = MeterReading(reading_date, value)
    replacement = (
        replacement_between(account.meters, base.previous.date, reading_date) if base.previous else None
    )
    problems = validate_reading(
        new,
        base.previous,
        MeterInfo(meter.serial, meter.digits, meter.installed_on, meter.initial_reading),
        today,
        average,
        confirm_implausible,
        replacement,
    )
    if problems:
        return Rejected(problems)
    assert base.base is not None
    if base.previous is None and reading_date <= base.base.date:
        return Rejected(
            [
                ReadingProblem(
                    "not_after_previous",
                    {"reading_date": reading_date.isoformat(), "previous_date": base.base.date.isoformat()},
                )
            ]
        )
    try:
        consumption, _ = consumption_between(
            base.base.value,
            value,
            meter.digits,
            replacement_between(account.meters, base.base.date, reading_date),
        )
    except RatingError as error:
        return Rejected([ReadingProblem(error.code, dict(error.params))])  # type: ignore[arg-type]
    reading = ReadingSubmitted(
        reading_id=reading_id,
        account_no=account_no,
        meter_serial=meter.serial,
        reading_date=reading_date,
        value=value,
        source=source,
        confirmed_implausible=confirm_implausible,
    )
    envelope = await own.append_reading(conn, version, reading, consumption, new_event_id)
    return Accepted(envelope, reading, base.base, consumption)


async def submit_reading(
    conn: Connection,
    own: OwnEvents,
    *,
    account_no: str,
    reading_date: dt.date,
    value: Decimal,
    source: Literal["customer", "grid"],
    confirm_implausible: bool = False,
    reading_id: str | None = None,
    new_event_id: uuid.UUID | None = None,
    today: dt.date | None = None,
    meter_serial: str | None = None,
    attempts: int = 3,
) -> Outcome:
    """Validate and record a reading. A concurrent change of the account's readings is retried
    (re-validated from the new state) `attempts` times, then raises `Conflict`."""
    rid = reading_id or str(uuid.uuid4())
    eid = new_event_id or uuid.uuid4()
    day = today or today_in_almaty()
    for _ in range(attempts):
        try:
            async with conn.transaction():
                return await _attempt(
                    conn,
                    own,
                    account_no=account_no,
                    reading_date=reading_date,
                    value=value,
                    source=source,
                    confirm_implausible=confirm_implausible,
                    reading_id=rid,
                    new_event_id=eid,
                    today=day,
                    meter_serial=meter_serial,
                )
        except (ConcurrencyError, UniqueViolation):
            continue  # another reading or a charge was appended meanwhile: decide again
    raise Conflict(account_no)
