"""The rating stream and the monthly billing run (RATING.md §6), on top of the engine.

`RatingService.rate_reading` turns one accepted ReadingSubmitted into exactly one ChargeCalculated
(`chg-{reading_id}`), rated from the account's previous accepted reading (or its first meter's
installation) with the attributes as they stand on the reading's date; in the same transaction it
trues up the open estimates (`EstimateReversed`) and completes a billed period waiting for this charge.

`BillingService.bill_accounts` bills a batch of accounts for a closed period: an estimate where there is
no reading, then `PeriodBilled` once the period's charges are all appended (else the period waits as
`pending`, and the rating of the missing reading completes it).

Both lock the account's row (`accounts ... FOR UPDATE`) for their transaction, so the billing run and
the rating stream never decide about one account at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel

from calculator.adapters.accounts import Household, household_on, load_account
from calculator.adapters.catalog import CatalogRepository
from calculator.adapters.own_events import OwnEvents, charge_ids_in_period, load_charges, load_readings
from calculator.domain.billing import (
    ChargeFacts,
    Meter,
    billed_history,
    billing_period_stream,
    estimate_charge_id,
    estimates_to_reverse,
    event_id,
    install_point,
    meter_on,
    meter_readings_stream,
    needs_estimate,
    period_bounds,
    period_of,
    period_start,
    reading_charge_id,
    replacement_between,
    reversal_id,
)
from calculator.domain.errors import RatingError
from calculator.domain.estimates import estimate_for_period
from calculator.domain.rating import MeterReading, RatedInterval, RatingLine, rate, rate_consumption
from contracts.events.calculator import (
    ChargeCalculated,
    ChargeLine,
    EstimateReversed,
    PeriodBilled,
    ReadingPoint,
)
from service_runtime.db import Connection

log = logging.getLogger(__name__)

DEFAULT_DIGITS = 6  # only for an account without a meter: rate_consumption never reads the digits


def charge_lines(lines: tuple[RatingLine, ...]) -> list[ChargeLine]:
    return [
        ChargeLine(
            from_date=line.from_date,
            to_date=line.to_date,
            tier=line.tier,
            limit_kwh=line.limit_kwh,
            kwh=line.kwh,
            rate=line.rate,
            amount=line.amount,
        )
        for line in lines
    ]


def charge_from(
    charge_id: str,
    account_no: str,
    period: str,
    rated: RatedInterval,
    *,
    previous: MeterReading | None = None,
    current: MeterReading | None = None,
    estimated: bool = False,
) -> ChargeCalculated:
    return ChargeCalculated(
        charge_id=charge_id,
        account_no=account_no,
        period=period,
        previous=ReadingPoint(date=previous.date, value=previous.value) if previous else None,
        current=ReadingPoint(date=current.date, value=current.value) if current else None,
        days=rated.days,
        consumption_kwh=rated.consumption_kwh,
        tariff_option_applied=rated.tariff_option_applied,
        lines=charge_lines(rated.lines),
        net_total=rated.net_total,
        vat=rated.vat,
        total=rated.total,
        estimated=estimated,
    )


RateOutcome = Literal["rated", "duplicate", "foreign", "failed", "not_ready"]


@dataclass
class RatingService:
    own: OwnEvents
    catalog: CatalogRepository

    async def rate_reading(self, conn: Connection, reading_id: str, reading_event_id: str) -> RateOutcome:
        """Rate one accepted reading; idempotent (a second call for the same reading does nothing).

        A reading that is not in this service's store (another instance's, in a shared test cluster) is
        `foreign` and ignored. A reading the engine refuses is recorded in `rating_failures`.
        """
        async with conn.transaction():
            cur = await conn.execute(
                "SELECT account_no, reading_date, value FROM readings WHERE reading_id = %s AND event_id = %s",
                (reading_id, reading_event_id),
            )
            row = await cur.fetchone()
            if row is None:
                return "foreign"
            account_no, reading_date, value = str(row[0]), row[1], Decimal(row[2])
            account = await load_account(conn, account_no, lock=True)
            if account is None:
                return "not_ready"  # the accounts projection is being rebuilt: try again later
            charge_id = reading_charge_id(reading_id)
            cur = await conn.execute("SELECT 1 FROM charges WHERE charge_id = %s", (charge_id,))
            if await cur.fetchone() is not None:
                return "duplicate"
            readings = await load_readings(conn, account_no)
            index = next(i for i, r in enumerate(readings) if r.reading_id == reading_id)
            previous = (
                MeterReading(readings[index - 1].reading_date, readings[index - 1].value)
                if index > 0
                else install_point(account.meters)
            )
            household = await household_on(conn, account_no, reading_date)
            meter = meter_on(account.meters, reading_date)
            if previous is None or household is None or meter is None:
                return "not_ready"
            current = MeterReading(reading_date, value)
            period = period_of(reading_date)
            try:
                catalog = await self.catalog.load(conn)
                result = rate(
                    previous,
                    current,
                    household.attributes(meter.digits),
                    catalog,
                    replacement_between(account.meters, previous.date, reading_date),
                )
            except RatingError as error:
                log.error(
                    "reading cannot be rated",
                    extra={"reading_id": reading_id, "account_no": account_no, "code": error.code},
                )
                await conn.execute(
                    "INSERT INTO rating_failures (reading_id, account_no, code, detail) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT (reading_id) DO UPDATE SET code = excluded.code, detail = excluded.detail,"
                    " failed_at = now()",
                    (reading_id, account_no, error.code, error.message_ru),
                )
                return "failed"
            charge = charge_from(charge_id, account_no, period, result, previous=previous, current=current)
            await self.own.append_latest(
                conn, meter_readings_stream(account_no), [(charge, event_id("ChargeCalculated", charge_id))]
            )
            to_reverse = estimates_to_reverse(await load_charges(conn, account_no), period)
            if to_reverse:
                correction_id = reversal_id(reading_id)
                reversal = EstimateReversed(
                    correction_id=correction_id,
                    account_no=account_no,
                    period=period,
                    amount=-sum((c.total for c in to_reverse), Decimal("0.00")),
                    reversed_charge_ids=[c.charge_id for c in to_reverse],
                )
                await self.own.append_to_period(
                    conn, account_no, period, [(reversal, event_id("EstimateReversed", correction_id))]
                )
            await complete_pending_period(conn, self.own, account_no, period)
        return "rated"


async def complete_pending_period(conn: Connection, own: OwnEvents, account_no: str, period: str) -> bool:
    """Append PeriodBilled for a closed period that waited for this account's reading charges."""
    cur = await conn.execute(
        "SELECT status FROM period_billing WHERE account_no = %s AND period = %s", (account_no, period)
    )
    row = await cur.fetchone()
    if row is None or row[0] != "pending":
        return False
    if await unrated_readings_in(conn, account_no, period):
        return False
    await _append_period_billed(
        conn, own, account_no, period, await charge_ids_in_period(conn, account_no, period)
    )
    return True


async def unrated_readings_in(conn: Connection, account_no: str, period: str) -> int:
    first, following = period_bounds(period)
    cur = await conn.execute(
        "SELECT count(*) FROM readings r"
        " WHERE r.account_no = %s AND r.reading_date >= %s AND r.reading_date < %s"
        " AND NOT EXISTS (SELECT 1 FROM charges c WHERE c.reading_id = r.reading_id)"
        " AND NOT EXISTS (SELECT 1 FROM rating_failures f WHERE f.reading_id = r.reading_id)",
        (account_no, first, following),
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _append_period_billed(
    conn: Connection, own: OwnEvents, account_no: str, period: str, charge_ids: list[str]
) -> None:
    billed = PeriodBilled(account_no=account_no, period=period, charge_ids=charge_ids)
    await own.append_to_period(
        conn, account_no, period, [(billed, event_id("PeriodBilled", f"{account_no}:{period}"))]
    )


BillOutcome = Literal["estimated", "billed", "pending", "already_billed", "inactive", "no_attributes"]


@dataclass
class BillingService:
    own: OwnEvents
    catalog: CatalogRepository

    async def bill_accounts(
        self, conn: Connection, period: str, account_nos: list[str]
    ) -> dict[str, BillOutcome]:
        """Bill a batch of accounts for a closed period, in the caller's transaction (set-based reads, one
        multi-row append for the batch). Re-running it for billed accounts changes nothing."""
        first, following = period_bounds(period)
        outcomes: dict[str, BillOutcome] = {}
        catalog = await self.catalog.load(conn)
        cur = await conn.execute(
            "SELECT account_no, opened_on FROM accounts WHERE account_no = ANY(%s) ORDER BY account_no FOR UPDATE",
            (account_nos,),
        )
        opened = {str(a): d for a, d in await cur.fetchall()}
        cur = await conn.execute(
            "SELECT account_no, status FROM period_billing WHERE period = %s AND account_no = ANY(%s)",
            (period, account_nos),
        )
        status = {str(a): str(s) for a, s in await cur.fetchall()}
        cur = await conn.execute(
            "SELECT account_no, max(reading_date) FROM readings WHERE account_no = ANY(%s) GROUP BY account_no",
            (account_nos,),
        )
        last_reading = {str(a): d for a, d in await cur.fetchall()}
        cur = await conn.execute(
            "SELECT r.account_no, count(*) FROM readings r"
            " WHERE r.account_no = ANY(%s) AND r.reading_date >= %s AND r.reading_date < %s"
            " AND NOT EXISTS (SELECT 1 FROM charges c WHERE c.reading_id = r.reading_id)"
            " AND NOT EXISTS (SELECT 1 FROM rating_failures f WHERE f.reading_id = r.reading_id)"
            " GROUP BY r.account_no",
            (account_nos, first, following),
        )
        unrated = {str(a): int(n) for a, n in await cur.fetchall()}
        cur = await conn.execute(
            "SELECT account_no, charge_id, period, estimated, from_date, to_date, days, consumption_kwh, total,"
            " reversed_by IS NOT NULL FROM charges WHERE account_no = ANY(%s) ORDER BY period, from_date, charge_id",
            (account_nos,),
        )
        charges: dict[str, list[ChargeFacts]] = defaultdict(list)
        for r in await cur.fetchall():
            charges[str(r[0])].append(
                ChargeFacts(r[1], r[2], r[3], r[4], r[5], r[6], Decimal(r[7]), Decimal(r[8]), r[9])
            )
        cur = await conn.execute(
            "SELECT account_no, digits, installed_on FROM meters WHERE account_no = ANY(%s)", (account_nos,)
        )
        meters: dict[str, list[tuple[int, dt.date]]] = defaultdict(list)
        for a, digits, installed_on in await cur.fetchall():
            meters[str(a)].append((int(digits), installed_on))
        households = await households_on(conn, account_nos, following - dt.timedelta(days=1))
        appends: list[tuple[str, list[tuple[BaseModel, uuid.UUID]]]] = []

        for account_no in account_nos:
            opened_on = opened.get(account_no)
            if opened_on is None:
                outcomes[account_no] = "inactive"
                continue
            if status.get(account_no) == "billed":
                outcomes[account_no] = "already_billed"
                continue
            estimate, start, end = needs_estimate(period, opened_on, last_reading.get(account_no))
            if start >= end:
                outcomes[account_no] = "inactive"
                continue
            account_charges = charges.get(account_no, [])
            ids = [c.charge_id for c in account_charges if c.period == period]
            before: list[tuple[BaseModel, uuid.UUID]] = []
            charge_id = estimate_charge_id(account_no, period)
            if estimate and charge_id not in ids:
                household = households.get(account_no)
                if household is None:
                    outcomes[account_no] = "no_attributes"
                    continue
                digits = max(meters[account_no])[0] if meters.get(account_no) else DEFAULT_DIGITS
                attrs = household.attributes(digits)
                guess = estimate_for_period(
                    billed_history(account_charges), period_start(period), (end - start).days, attrs, catalog
                )
                rated = rate_consumption(start, end, guess.kwh, attrs, catalog)
                before.append(
                    (
                        charge_from(charge_id, account_no, period, rated, estimated=True),
                        event_id("ChargeCalculated", charge_id),
                    )
                )
                ids.append(charge_id)
            if unrated.get(account_no):
                if before:
                    appends.append((billing_period_stream(account_no, period), before))
                await conn.execute(
                    "INSERT INTO period_billing (account_no, period, status) VALUES (%s, %s, 'pending')"
                    " ON CONFLICT (account_no, period) DO NOTHING",
                    (account_no, period),
                )
                outcomes[account_no] = "pending"
                continue
            billed = PeriodBilled(account_no=account_no, period=period, charge_ids=ids)
            appends.append(
                (
                    billing_period_stream(account_no, period),
                    [*before, (billed, event_id("PeriodBilled", f"{account_no}:{period}"))],
                )
            )
            outcomes[account_no] = "estimated" if before else "billed"
        await self.own.bulk_append(conn, appends)
        return outcomes


_HOUSEHOLDS_SQL = """
SELECT DISTINCT ON (account_no, attribute) account_no, attribute, value
FROM account_attributes
WHERE account_no = ANY(%(nos)s)
ORDER BY account_no, attribute,
         (effective_from <= %(day)s) DESC,
         CASE WHEN effective_from <= %(day)s THEN effective_from END DESC NULLS LAST,
         effective_from ASC,
         stream_version DESC
"""


async def households_on(conn: Connection, account_nos: list[str], day: dt.date) -> dict[str, Household]:
    """`household_on` for many accounts at once."""
    cur = await conn.execute(_HOUSEHOLDS_SQL, {"nos": account_nos, "day": day})
    values: dict[str, dict[str, object]] = defaultdict(dict)
    for a, attribute, value in await cur.fetchall():
        values[str(a)][str(attribute)] = value
    out: dict[str, Household] = {}
    for a, v in values.items():
        if {"residents", "tariff_option", "electric_stove", "living_alone"} <= v.keys():
            out[a] = Household(
                tariff_option="tiered" if v["tariff_option"] == "tiered" else "flat",
                residents=int(str(v["residents"])),
                electric_stove=bool(v["electric_stove"]),
                living_alone=bool(v["living_alone"]),
            )
    return out


__all__ = [
    "BillingService",
    "Meter",
    "RatingService",
    "charge_from",
    "complete_pending_period",
    "household_on",
]
