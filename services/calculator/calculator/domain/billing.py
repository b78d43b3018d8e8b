"""Pure rules of charges and the monthly billing run (RATING.md §6), beside the engine. No I/O.

- Identifiers are deterministic, so a redelivered reading, a duplicate `PeriodClosed` or a re-run can
  never add a second charge: a reading's charge is `chg-{reading_id}`, an estimate `est-{account}-{period}`,
  a true-up `rev-{reading_id}`; the events carrying them get `uuid5` ids of the same names.
- A charge is dated by the reading's date: its period is the reading date's month.
- An account gets an estimate for a closed period when it was active in it and has no accepted reading
  dated in it (RATING.md §6, literally). The next actual reading reverses the open (not yet reversed)
  estimates of periods up to its own period, with one correction of minus their posted totals in the
  reading's period. Estimates of later periods (a period closed after a reading dated before it) stay
  until the next reading covers them.
- A period closed late, after an actual reading dated after it was already rated (possible since
  messages come in any order across topics): that reading covers the period's days, so the estimate is
  reversed at once, in that reading's period (`late_reversal_id`) — exactly the reversal its rating
  would have made had the period been closed in time. So the months show the same, whichever came
  first: the estimate in its period, its reversal in the period of the reading that covers it.
- The history behind averages (implausibility, estimates) is the *actual* charges only: per period,
  Σ kWh and Σ days of the charges rated from readings. Estimates are not history: an estimate based on
  estimates would only repeat itself.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from contracts.money import ZERO

from .estimates import BilledMonth, month_bounds
from .quantities import prorate
from .rating import MeterReading, MeterReplacement

ID_NAMESPACE = uuid.UUID("6f1c9e1a-3c55-4e0b-9a59-2a1f6c0d8b41")


def event_id(kind: str, key: str) -> uuid.UUID:
    """The deterministic event id of the event `kind` about `key` (idempotent appends)."""
    return uuid.uuid5(ID_NAMESPACE, f"{kind}:{key}")


def reading_charge_id(reading_id: str) -> str:
    return f"chg-{reading_id}"


def estimate_charge_id(account_no: str, period: str) -> str:
    return f"est-{account_no}-{period}"


def reversal_id(reading_id: str) -> str:
    return f"rev-{reading_id}"


def late_reversal_id(reading_id: str, period: str) -> str:
    """The reversal of a late-closed period's estimate by the (already rated) reading that covers it."""
    return f"rev-{reading_id}-{period}"


def meter_readings_stream(account_no: str) -> str:
    return f"meter-readings:{account_no}"


def billing_period_stream(account_no: str, period: str) -> str:
    return f"billing-period:{account_no}:{period}"


TARIFF_CATALOG_STREAM = "tariff-catalog"


# --- periods ---------------------------------------------------------------------------------------


def period_of(day: dt.date) -> str:
    """`YYYY-MM` of a date."""
    return f"{day.year:04d}-{day.month:02d}"


def period_start(period: str) -> dt.date:
    year, month = period.split("-")
    return dt.date(int(year), int(month), 1)


def period_bounds(period: str) -> tuple[dt.date, dt.date]:
    """`[first day, first day of the next month)` of `YYYY-MM`."""
    return month_bounds(period_start(period))


def previous_periods(last: str, count: int) -> list[str]:
    """`count` consecutive periods ending with `last`, oldest first."""
    start = period_start(last)
    out: list[str] = []
    year, month = start.year, start.month
    for _ in range(count):
        out.append(f"{year:04d}-{month:02d}")
        month -= 1
        if month == 0:
            year, month = year - 1, 12
    return list(reversed(out))


def needs_estimate(
    period: str, opened_on: dt.date, reading_dates: Iterable[dt.date]
) -> tuple[bool, dt.date, dt.date]:
    """`(estimate?, from, to)`: the period's active days `[from, to)` and whether to estimate them (no
    accepted reading dated in the period)."""
    first, following = period_bounds(period)
    start = max(first, opened_on)
    if start >= following:
        return False, start, following
    if any(first <= day < following for day in reading_dates):
        return False, start, following
    return True, start, following


# --- history --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChargeFacts:
    """What the rules need of a recorded charge."""

    charge_id: str
    period: str
    estimated: bool
    from_date: dt.date
    to_date: dt.date
    days: int
    consumption_kwh: Decimal
    total: Decimal
    reversed: bool


def billed_history(charges: Iterable[ChargeFacts]) -> list[BilledMonth]:
    """Per period with actual charges: Σ kWh and Σ days of them (estimates are not history)."""
    kwh: dict[str, Decimal] = {}
    days: dict[str, int] = {}
    for c in charges:
        if c.estimated:
            continue
        kwh[c.period] = kwh.get(c.period, ZERO) + c.consumption_kwh
        days[c.period] = days.get(c.period, 0) + c.days
    return [BilledMonth(period_start(p), kwh[p], days[p]) for p in sorted(kwh)]


def estimates_to_reverse(charges: Iterable[ChargeFacts], reading_period: str) -> list[ChargeFacts]:
    """The open estimates an actual reading of `reading_period` trues up (periods up to its own)."""
    return sorted(
        (c for c in charges if c.estimated and not c.reversed and c.period <= reading_period),
        key=lambda c: c.period,
    )


# --- meters ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Meter:
    serial: str
    digits: int
    installed_on: dt.date
    initial_reading: Decimal
    removed_on: dt.date | None
    final_reading: Decimal | None


def install_point(meters: Sequence[Meter]) -> MeterReading | None:
    """The account's first meter's installation, the "previous reading" of its first reading."""
    if not meters:
        return None
    first = min(meters, key=lambda m: (m.installed_on, m.removed_on is None))
    return MeterReading(first.installed_on, first.initial_reading)


def current_meter(meters: Sequence[Meter]) -> Meter | None:
    """The meter in place now: the last installed one that is not removed (else the last installed)."""
    if not meters:
        return None
    in_place = [m for m in meters if m.removed_on is None]
    pool = in_place or list(meters)
    return max(pool, key=lambda m: m.installed_on)


def replacement_between(
    meters: Sequence[Meter], previous_date: dt.date, new_date: dt.date
) -> MeterReplacement | None:
    """The meter replacement between two readings, as one `MeterReplacement` for the engine.

    Several replacements in one interval are folded into one: the intermediate meters' own consumption
    (`final − initial`) is added to the first removed meter's final reading, so the engine's formula
    `(old_final − previous) + (new − new_initial)` gives the total over every meter.
    """
    removed = sorted(
        (
            m
            for m in meters
            if m.removed_on is not None
            and m.final_reading is not None
            and previous_date <= m.removed_on <= new_date
        ),
        key=lambda m: m.removed_on or previous_date,
    )
    if not removed:
        return None
    last_removed_on = removed[-1].removed_on
    assert last_removed_on is not None
    successors = [m for m in meters if m.installed_on >= last_removed_on and m not in removed]
    new_meter = min(successors, key=lambda m: m.installed_on) if successors else None
    if new_meter is None:
        return None
    first = removed[0]
    assert first.final_reading is not None
    old_final = first.final_reading
    for middle in removed[1:]:
        assert middle.final_reading is not None
        old_final += middle.final_reading - middle.initial_reading
    return MeterReplacement(
        replaced_on=last_removed_on,
        old_final_reading=old_final,
        new_initial_reading=new_meter.initial_reading,
        new_digits=new_meter.digits,
    )


# --- the consumption chart -------------------------------------------------------------------------


def spread_by_month(from_date: dt.date, to_date: dt.date, kwh: Decimal) -> dict[str, Decimal]:
    """kWh of `[from_date, to_date)` spread over calendar months in proportion to days (0.01, the
    last month takes the remainder), so a reading covering three months draws three bars."""
    days = (to_date - from_date).days
    if days <= 0:
        return {period_of(to_date): kwh}
    out: dict[str, Decimal] = {}
    allocated = ZERO
    cursor = from_date
    while cursor < to_date:
        _, following = month_bounds(cursor)
        end = min(following, to_date)
        if end >= to_date:
            share = kwh - allocated
        else:
            share = min(prorate(kwh, (end - cursor).days, days), kwh - allocated)
        out[period_of(cursor)] = out.get(period_of(cursor), ZERO) + share
        allocated += share
        cursor = end
    return out


def meter_on(meters: Sequence[Meter], day: dt.date) -> Meter | None:
    """The meter a reading of `day` is taken on: the last one installed on or before it (else the current)."""
    installed = [m for m in meters if m.installed_on <= day]
    if not installed:
        return current_meter(meters)
    return max(installed, key=lambda m: m.installed_on)
