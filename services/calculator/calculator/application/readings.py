"""Submitting a meter reading (RATING.md §5): the customer's through the API, the grid company's from
`backoffice.readings.v1`. One use case for both: validate against the account's state, and on success
append ReadingSubmitted to `meter-readings:{no}` with optimistic concurrency. A rejected reading records
nothing.

Choices:
- The "previous reading" of an account's first reading is its first meter's installation
  (`installed_on`, `initial_reading`); a first reading dated on the install date cannot be rated
  (0 days) and is refused as `not_after_previous`.
- The average for the implausibility check is over the last three billed months before the reading's
  month, from the actual charges only (`domain.billing.billed_history`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from psycopg.errors import UniqueViolation

from calculator.adapters.accounts import AccountRecord, load_account
from calculator.adapters.own_events import OwnEvents, ReadingRow, load_charges, load_readings
from calculator.domain.billing import (
    billed_history,
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
    account = await load_account(conn, account_no)
    if account is None:
        return NotReady("account_not_found")
    meter = account.meter
    if meter is None:
        return NotReady("no_meter")
    if meter_serial is not None and meter_serial != meter.serial:
        if all(m.serial != meter_serial for m in account.meters):
            return NotReady("meter_unknown")
        return Rejected(
            [
                ReadingProblem(
                    "meter_serial_mismatch", {"meter_serial": meter_serial, "current_serial": meter.serial}
                )
            ]
        )
    version = await own.store.stream_version(conn, meter_readings_stream(account_no))
    readings = await load_readings(conn, account_no)
    base = rating_base(account, readings)
    history = billed_history(await load_charges(conn, account_no))
    average = average_daily_kwh(history, before=period_start(period_of(reading_date)))
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
