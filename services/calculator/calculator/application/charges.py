"""The rating stream, the monthly billing run and the reconciliation of charges (RATING.md §6).

`RatingService.rate_reading` turns one accepted ReadingSubmitted into exactly one ChargeCalculated
(`chg-{reading_id}`), rated from the account's previous accepted reading (or its first meter's
installation) with the attributes as they stand on the reading's date (`domain.reconcile.
rate_reading_in_chain`); in the same transaction it trues up the open estimates (`EstimateReversed` of
their posted totals, adjustments included) and completes a billed period waiting for this charge.

`BillingService.bill_accounts` bills a batch of accounts for a closed period: an estimate where there is
no reading (`domain.reconcile.estimate_in_period`), then `PeriodBilled` once the period's charges are
all appended (else the period waits as `pending`, and the rating of the missing reading completes it).

`ReconcileService.reconcile` brings an account's charges to what today's facts make them
(`domain.reconcile.plan_adjustments`): a late ResidentsChanged / TariffOptionChanged / MeterReplaced, a
late tariff row or VAT rate, or a late earlier reading behind an open estimate is corrected by an
adjustment of the difference in the charge's own period (an `EstimateReversed` event with correction id
`adj{n}-{charge_id}` and a reason of its own: the ledger posts it as a correction).

All three lock the account's row (`accounts ... FOR UPDATE`) for their transaction, so they never
decide about one account at once.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Literal

from psycopg import AsyncCursor
from pydantic import BaseModel

from calculator.adapters.accounts import (
    household_on,
    load_facts,
    load_facts_and,
    load_many_facts,
    request_reconcile,
)
from calculator.adapters.catalog import CatalogRepository
from calculator.adapters.own_events import OwnEvents, charge_ids_in_period, load_posted_charges
from calculator.domain.billing import (
    Meter,
    billing_period_stream,
    estimate_charge_id,
    event_id,
    late_reversal_id,
    meter_readings_stream,
    needs_estimate,
    period_bounds,
    period_of,
    reading_charge_id,
    reversal_id,
)
from calculator.domain.errors import RatingError
from calculator.domain.rating import MeterReading, RatedInterval, RatingLine
from calculator.domain.reconcile import (
    AccountFacts,
    Adjustment,
    covering_reading,
    estimate_over,
    estimates_to_true_up,
    missing_estimates,
    open_estimates_after,
    plan_adjustments,
    rate_reading_in_chain,
    reversal_amount,
)
from calculator.domain.tariffs import TariffCatalog
from contracts.events.calculator import (
    ChargeCalculated,
    ChargeLine,
    EstimateReversed,
    PeriodBilled,
    ReadingPoint,
)
from service_runtime.db import Connection

log = logging.getLogger(__name__)

ADJUSTMENT_REASON = "Перерасчёт начисления: изменились сведения лицевого счёта или тариф"


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
            account_no, reading_date = str(row[0]), row[1]
            charge_id = reading_charge_id(reading_id)
            stream = meter_readings_stream(account_no)
            # One round trip after the reading: the lock, the facts, and (after the lock) whether it was
            # rated already, the catalog's version and the stream's (pipelined, in this order).
            loaded, (charged, catalog_version, stream_version) = await load_facts_and(
                conn,
                account_no,
                lock=True,
                then=(
                    ("SELECT 1 FROM charges WHERE charge_id = %s", (charge_id,)),
                    (CatalogRepository.VERSION_SQL, CatalogRepository.VERSION_PARAMS),
                    ("SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = %s", (stream,)),
                ),
            )
            if loaded is None:
                return "not_ready"  # the accounts projection is being rebuilt: try again later
            _, facts = loaded
            if charged:
                return "duplicate"
            index = next(i for i, r in enumerate(facts.readings) if r.reading_id == reading_id)
            period = period_of(reading_date)
            try:
                catalog = await self.catalog.load(conn, version=int(catalog_version[0][0]))
                result = rate_reading_in_chain(facts, index, catalog)
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
            if result is None:
                return "not_ready"
            charge = charge_from(
                charge_id, account_no, period, result, previous=result.previous, current=result.current
            )
            await self.own.append_latest(
                conn,
                stream,
                [(charge, event_id("ChargeCalculated", charge_id))],
                version=int(stream_version[0][0]),
            )
            async with conn.pipeline():  # one round trip for both
                status = await period_status(conn, account_no, period)
                posted = await load_posted_charges(conn, account_no)
            to_reverse = estimates_to_true_up(posted, period)
            if to_reverse:
                correction_id = reversal_id(reading_id)
                reversal = EstimateReversed(
                    correction_id=correction_id,
                    account_no=account_no,
                    period=period,
                    amount=reversal_amount(to_reverse),
                    reversed_charge_ids=[c.charge_id for c in to_reverse],
                )
                await self.own.append_to_period(
                    conn, account_no, period, [(reversal, event_id("EstimateReversed", correction_id))]
                )
            if open_estimates_after(posted, period):
                await request_reconcile(conn, [account_no])  # their history now has this reading
            if await status.fetchone() == ("pending",):  # (neither append above changes it)
                await complete_pending_period(conn, self.own, account_no, period)
        return "rated"


async def period_status(conn: Connection, account_no: str, period: str) -> AsyncCursor[tuple[Any, ...]]:
    """The cursor of the account's `period_billing` status query (in a pipeline: not fetched yet)."""
    return await conn.execute(
        "SELECT status FROM period_billing WHERE account_no = %s AND period = %s", (account_no, period)
    )


async def complete_pending_period(conn: Connection, own: OwnEvents, account_no: str, period: str) -> bool:
    """Append PeriodBilled for a closed period that waited for this account's reading charges."""
    cur = await period_status(conn, account_no, period)
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
        outcomes: dict[str, BillOutcome] = {}
        catalog = await self.catalog.load(conn)
        async with conn.pipeline():  # one round trip: the lock first, then what the batch's state is
            await conn.execute(
                "SELECT account_no FROM accounts WHERE account_no = ANY(%s) ORDER BY account_no FOR UPDATE",
                (account_nos,),
            )
            status_cur = await conn.execute(
                "SELECT account_no, status FROM period_billing WHERE period = %s AND account_no = ANY(%s)",
                (period, account_nos),
            )
            in_period_cur = await conn.execute(
                "SELECT account_no, charge_id FROM charges WHERE account_no = ANY(%s) AND period = %s"
                " ORDER BY from_date, charge_id",
                (account_nos, period),
            )
        status = {str(a): str(s) for a, s in await status_cur.fetchall()}
        in_period: dict[str, list[str]] = defaultdict(list)
        for a, charge_id in await in_period_cur.fetchall():
            in_period[str(a)].append(str(charge_id))
        facts = await load_many_facts(conn, account_nos)
        unrated, rated_readings = await _unrated_and_rated(conn, facts, period)
        appends: list[tuple[str, list[tuple[BaseModel, uuid.UUID]]]] = []
        late: list[tuple[str, list[tuple[BaseModel, uuid.UUID]]]] = []

        for account_no in account_nos:
            account = facts.get(account_no)
            if account is None:
                outcomes[account_no] = "inactive"
                continue
            if status.get(account_no) == "billed":
                outcomes[account_no] = "already_billed"
                continue
            estimate, start, end = needs_estimate(
                period, account.opened_on, (r.reading_date for r in account.readings)
            )
            if start >= end:
                outcomes[account_no] = "inactive"
                continue
            ids = in_period.get(account_no, [])
            before: list[tuple[BaseModel, uuid.UUID]] = []
            charge_id = estimate_charge_id(account_no, period)
            if estimate and charge_id not in ids:
                rated = estimate_over(account, period, start, end, catalog)
                if rated is None:
                    outcomes[account_no] = "no_attributes"
                    continue
                before.append(
                    (
                        charge_from(charge_id, account_no, period, rated, estimated=True),
                        event_id("ChargeCalculated", charge_id),
                    )
                )
                ids = [*ids, charge_id]
                covering = covering_reading(account, period)
                if covering is not None and covering.reading_id in rated_readings:
                    # Closed late: the reading that covers these days was rated already. Its true-up,
                    # as it would have been had the period been closed in time (domain/billing.py).
                    reading_period = period_of(covering.reading_date)
                    correction_id = late_reversal_id(covering.reading_id, period)
                    reversal = EstimateReversed(
                        correction_id=correction_id,
                        account_no=account_no,
                        period=reading_period,
                        amount=-rated.total,
                        reversed_charge_ids=[charge_id],
                    )
                    late.append(  # after the estimate it reverses (the projection needs it first)
                        (
                            billing_period_stream(account_no, reading_period),
                            [(reversal, event_id("EstimateReversed", correction_id))],
                        )
                    )
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
        await self.own.bulk_append(conn, appends + late)
        return outcomes


async def _unrated_and_rated(
    conn: Connection, facts: dict[str, AccountFacts], period: str
) -> tuple[dict[str, int], set[str]]:
    """For a batch being billed: per account, its readings dated in the period that are neither rated nor
    failed (the period must wait for them), and which of the readings covering the period (the first one
    dated after it, `covering_reading`) are rated already. Asked only about the accounts and readings the
    facts show (most accounts have neither: then no query at all)."""
    first, following = period_bounds(period)
    with_readings = [
        no for no, f in facts.items() if any(first <= r.reading_date < following for r in f.readings)
    ]
    covering = [c.reading_id for f in facts.values() if (c := covering_reading(f, period)) is not None]
    unrated: dict[str, int] = {}
    rated: set[str] = set()
    if not with_readings and not covering:
        return unrated, rated
    async with conn.pipeline():
        unrated_cur = (
            await conn.execute(
                "SELECT r.account_no, count(*) FROM readings r"
                " WHERE r.account_no = ANY(%s) AND r.reading_date >= %s AND r.reading_date < %s"
                " AND NOT EXISTS (SELECT 1 FROM charges c WHERE c.reading_id = r.reading_id)"
                " AND NOT EXISTS (SELECT 1 FROM rating_failures f WHERE f.reading_id = r.reading_id)"
                " GROUP BY r.account_no",
                (with_readings, first, following),
            )
            if with_readings
            else None
        )
        rated_cur = (
            await conn.execute("SELECT reading_id FROM charges WHERE reading_id = ANY(%s)", (covering,))
            if covering
            else None
        )
    if unrated_cur is not None:
        unrated = {str(a): int(n) for a, n in await unrated_cur.fetchall()}
    if rated_cur is not None:
        rated = {str(r[0]) for r in await rated_cur.fetchall()}
    return unrated, rated


@dataclass
class ReconcileService:
    own: OwnEvents
    catalog: CatalogRepository

    async def reconcile(self, conn: Connection, account_no: str) -> list[Adjustment]:
        """Correct the account's posted charges to what today's facts make them (idempotent: a second
        call with nothing new posts nothing). Locks the account's row first, so a rating or billing
        transaction in flight with older facts has committed its charge before this looks."""
        async with conn.transaction():
            loaded = await load_facts(conn, account_no, lock=True)
            if loaded is None:
                return []
            _, facts = loaded
            catalog = await self.catalog.load(conn)
            await self._add_missing_estimates(conn, account_no, facts, catalog)
            posted = await load_posted_charges(conn, account_no)
            if not posted:
                return []
            planned = plan_adjustments(facts, posted, catalog)
            by_period: dict[str, list[tuple[BaseModel, uuid.UUID]]] = defaultdict(list)
            for adjustment in planned:
                correction = EstimateReversed(
                    correction_id=adjustment.correction_id,
                    account_no=account_no,
                    period=adjustment.period,
                    amount=adjustment.amount,
                    reversed_charge_ids=[adjustment.charge_id],
                    reason=ADJUSTMENT_REASON,
                )
                by_period[adjustment.period].append(
                    (correction, event_id("ChargeAdjusted", adjustment.correction_id))
                )
            for period, events in sorted(by_period.items()):
                await self.own.append_to_period(conn, account_no, period, events)
            if planned:
                log.info(
                    "charges adjusted to the facts known now",
                    extra={
                        "account_no": account_no,
                        "adjustments": [(a.charge_id, str(a.amount)) for a in planned],
                    },
                )
        return planned

    async def _add_missing_estimates(
        self, conn: Connection, account_no: str, facts: AccountFacts, catalog: TariffCatalog
    ) -> None:
        """The estimates of billed periods that lack them (`domain.reconcile.missing_estimates`), with
        the immediate true-up when the reading that covers the period is rated already."""
        cur = await conn.execute(
            "SELECT period FROM period_billing WHERE account_no = %s AND status = 'billed'", (account_no,)
        )
        billed = [str(r[0]) for r in await cur.fetchall()]
        if not billed:
            return
        posted = await load_posted_charges(conn, account_no)
        missing = missing_estimates(
            facts, billed, posted, catalog, lambda period: estimate_charge_id(account_no, period)
        )
        for item in missing:
            charge_id = estimate_charge_id(account_no, item.period)
            charge = charge_from(charge_id, account_no, item.period, item.rated, estimated=True)
            await self.own.append_to_period(
                conn, account_no, item.period, [(charge, event_id("ChargeCalculated", charge_id))]
            )
            if item.covered_by is not None:
                reading_period = period_of(item.covered_by.reading_date)
                correction_id = late_reversal_id(item.covered_by.reading_id, item.period)
                reversal = EstimateReversed(
                    correction_id=correction_id,
                    account_no=account_no,
                    period=reading_period,
                    amount=-item.rated.total,
                    reversed_charge_ids=[charge_id],
                )
                await self.own.append_to_period(
                    conn,
                    account_no,
                    reading_period,
                    [(reversal, event_id("EstimateReversed", correction_id))],
                )
        if missing:
            log.info(
                "missing estimates of billed periods added",
                extra={"account_no": account_no, "periods": [m.period for m in missing]},
            )


__all__ = [
    "BillingService",
    "Meter",
    "RatingService",
    "ReconcileService",
    "charge_from",
    "complete_pending_period",
    "household_on",
]
