"""Back-office ingress: tariffs, grid readings, period closings. Each appends to calculator's own store
(or records a billing run) in the consumer's transaction; what can never apply goes to the DLQ."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import ClassVar

from prometheus_client import Counter
from psycopg.types.json import Jsonb

from calculator.adapters.catalog import CatalogRepository
from calculator.adapters.own_events import OwnEvents
from calculator.application.readings import Accepted, NotReady, Rejected, submit_reading, today_in_almaty
from calculator.domain.billing import period_bounds
from contracts import backoffice
from contracts.events.calculator import TariffPublished, VatRateChanged
from service_runtime.consumers import IngressHandler, IngressMessage
from service_runtime.db import Connection
from service_runtime.dead_letters import DeadLetter
from service_runtime.eventstore import lock_for_append

log = logging.getLogger(__name__)

GRID_READINGS = Counter("calculator_grid_readings_total", "Grid readings by outcome", ["outcome"])
SKIPPED_HISTORY = Counter(
    "calculator_ingress_history_skipped_total",
    "Back-office messages older than ingress_since",
    ["event_type"],
)


class TariffIngress(IngressHandler):
    """TariffPublished / VatRateChanged → the `tariff-catalog` stream (identical re-sends add nothing).
    A new or changed row asks for every account's charges to be reconciled with it."""

    name: ClassVar[str] = "tariff-ingress"
    topics: ClassVar[tuple[str, ...]] = (backoffice.TARIFFS,)

    def __init__(self, catalog: CatalogRepository) -> None:
        self._catalog = catalog

    async def handle(self, conn: Connection, message: IngressMessage) -> None:
        p = message.payload
        if isinstance(p, backoffice.TariffPublished):
            payload: TariffPublished | VatRateChanged = TariffPublished(
                effective_from=p.effective_from,
                flat=p.flat,
                tier1=p.tier1,
                tier2=p.tier2,
                tier3=p.tier3,
                norms=list(p.norms),
            )
        elif isinstance(p, backoffice.VatRateChanged):
            payload = VatRateChanged(effective_from=p.effective_from, rate=p.rate)
        else:
            return
        if await self._catalog.publish(conn, payload, message.envelope.event_id):
            # A row or rate that is new (or changed) may apply to intervals rated already: every account
            # is checked (not only those with charges: a rating may be in flight with the old catalog).
            await conn.execute(
                "INSERT INTO reconcile_requests (account_no) SELECT account_no FROM accounts"
                " ON CONFLICT (account_no) DO UPDATE SET version = reconcile_requests.version + 1,"
                " requested_at = now()"
            )


def _rejection_reason(outcome: Rejected) -> str:
    return "; ".join(f"{p.code}: {p.message_ru}" for p in outcome.problems)


def _is_history(message: IngressMessage, since: dt.datetime | None) -> bool:
    if since is not None and message.envelope.occurred_at < since:
        SKIPPED_HISTORY.labels(message.envelope.event_type).inc()
        return True
    return False


class GridReadingIngress(IngressHandler):
    """GridReadingTaken, validated like a customer's reading (RATING.md §5). Invalid → DLQ with the
    reason. A reading for an account or meter not known yet is parked and applied when it arrives.

    Parking and unparking must not miss each other: this consumer and the accounts projection run in
    different transactions. A reading that finds no account/meter takes the append lock (which the
    projection's unparking also takes, see `ParkedGridReadings`) and decides again; only then does it
    park. So either the projection committed first (the second look sees the meter and accepts the
    reading), or the parked row is committed before the projection looks for parked readings. A reading
    of an account that still has parked readings is parked behind them (they are applied in date order).
    """

    name: ClassVar[str] = "grid-reading-ingress"
    topics: ClassVar[tuple[str, ...]] = (backoffice.READINGS,)

    def __init__(self, own: OwnEvents, since: dt.datetime | None = None) -> None:
        self._own = own
        self._since = since

    async def handle(self, conn: Connection, message: IngressMessage) -> None:
        p = message.payload
        if not isinstance(p, backoffice.GridReadingTaken) or _is_history(message, self._since):
            return
        if await self._parked_behind(conn, message.envelope.event_id, p):
            return
        outcome = await submit_grid_reading(conn, self._own, message.envelope.event_id, p)
        if isinstance(outcome, NotReady):
            await lock_for_append(conn)  # see the class doc: decide again once nobody unparks meanwhile
            if await self._parked_behind(conn, message.envelope.event_id, p):
                return
            outcome = await submit_grid_reading(conn, self._own, message.envelope.event_id, p)
        if isinstance(outcome, NotReady):
            await _park(conn, message.envelope.event_id, p, outcome.code)
        elif isinstance(outcome, Rejected):
            GRID_READINGS.labels("rejected").inc()
            raise DeadLetter(f"reading rejected: {_rejection_reason(outcome)}")
        else:
            GRID_READINGS.labels("accepted").inc()

    async def _parked_behind(
        self, conn: Connection, event_id: uuid.UUID, p: backoffice.GridReadingTaken
    ) -> bool:
        """With earlier readings of the account still parked, this one must not overtake them: apply
        what can be applied first; if some still wait, park this one behind them (True)."""
        if not await _has_parked(conn, p.account_no):
            return False
        await lock_for_append(conn)
        unpark = ParkedGridReadings(self._own)
        await unpark(conn, p.account_no)
        if not await _has_parked(conn, p.account_no):
            return False
        await _park(conn, event_id, p, "behind_parked")
        await unpark(conn, p.account_no)
        return True


async def _has_parked(conn: Connection, account_no: str) -> bool:
    cur = await conn.execute(
        "SELECT 1 FROM parked_grid_readings WHERE account_no = %s AND outcome IS NULL LIMIT 1", (account_no,)
    )
    return await cur.fetchone() is not None


async def _park(conn: Connection, event_id: uuid.UUID, p: backoffice.GridReadingTaken, why: str) -> None:
    await conn.execute(
        "INSERT INTO parked_grid_readings (event_id, account_no, payload) VALUES (%s, %s, %s)"
        " ON CONFLICT (event_id) DO NOTHING",
        (event_id, p.account_no, Jsonb(p.model_dump(mode="json"))),
    )
    GRID_READINGS.labels("parked").inc()
    log.info("grid reading parked", extra={"account_no": p.account_no, "why": why})


async def submit_grid_reading(
    conn: Connection, own: OwnEvents, source_event_id: uuid.UUID, p: backoffice.GridReadingTaken
) -> Accepted | Rejected | NotReady:
    # The back-office event id names the reading: a re-sent message can never add a second one.
    # RATING.md §5's implausibility confirmation is the customer's; the grid company's reading is the
    # meter's own record and nobody can confirm it: an implausible one is accepted.
    return await submit_reading(
        conn,
        own,
        account_no=p.account_no,
        reading_date=p.reading_date,
        value=p.value,
        source="grid",
        reading_id=str(source_event_id),
        new_event_id=source_event_id,
        meter_serial=p.meter_serial,
        confirm_implausible=True,
    )


class ParkedGridReadings:
    """Applies the parked grid readings of an account when its account or meter arrives, in reading-date
    order (one that still cannot apply, its meter unknown, stays parked)."""

    def __init__(self, own: OwnEvents) -> None:
        self._own = own

    async def __call__(self, conn: Connection, account_no: str) -> None:
        # The append lock first (held to the commit): a grid reading deciding to park meanwhile either
        # committed its parked row already (seen below) or waits and then sees this transaction's meter.
        await lock_for_append(conn)
        cur = await conn.execute(
            "SELECT event_id, payload FROM parked_grid_readings WHERE account_no = %s AND outcome IS NULL"
            " ORDER BY payload->>'reading_date', parked_at",
            (account_no,),
        )
        for event_id, payload in await cur.fetchall():
            reading = backoffice.GridReadingTaken.model_validate(payload)
            outcome = await submit_grid_reading(conn, self._own, event_id, reading)
            if isinstance(outcome, NotReady):
                continue  # its meter is still unknown: a later one on a known meter may apply
            verdict = (
                "accepted" if isinstance(outcome, Accepted) else f"rejected: {_rejection_reason(outcome)}"
            )
            if isinstance(outcome, Rejected):
                log.warning(
                    "parked grid reading rejected", extra={"account_no": account_no, "reason": verdict}
                )
            GRID_READINGS.labels("unparked_" + verdict.split(":")[0]).inc()
            await conn.execute(
                "UPDATE parked_grid_readings SET outcome = %s, resolved_at = now() WHERE event_id = %s",
                (verdict, event_id),
            )


class PeriodClosedIngress(IngressHandler):
    """PeriodClosed → a billing run request (the BillingRunner does the work in batches).

    Closing a period that has not ended yet (its last day is after today in Almaty) is refused (DLQ).
    A duplicate or repeated close re-opens the run: every account already billed is skipped, so it
    changes nothing. It keeps the run's list of accounts (`populated_at`): the accounts that became
    known since it was made are added by `BillingRunner.sync_new_accounts` (each new account is
    `billing_synced = false` until it is in every populated run of its periods), so listing every
    account again found nothing more and cost a conflicting insert per account of the whole register.
    CorrectionIssued on the same topic is the ledger's and is ignored here.
    """

    name: ClassVar[str] = "billing-ingress"
    topics: ClassVar[tuple[str, ...]] = (backoffice.BILLING,)

    def __init__(self, since: dt.datetime | None = None) -> None:
        self._since = since

    async def handle(self, conn: Connection, message: IngressMessage) -> None:
        p = message.payload
        if not isinstance(p, backoffice.PeriodClosed) or _is_history(message, self._since):
            return
        _, following = period_bounds(p.period)
        today = today_in_almaty()
        if following - dt.timedelta(days=1) > today:
            raise DeadLetter(
                f"period {p.period} has not ended yet (today is {today.isoformat()} in Asia/Almaty)"
            )
        await conn.execute(
            "INSERT INTO billing_runs (period, closed_at, requested_at) VALUES (%s, %s, now())"
            " ON CONFLICT (period) DO UPDATE SET closed_at = greatest(billing_runs.closed_at, excluded.closed_at),"
            " requested_at = now(), completed_at = NULL",
            (p.period, message.envelope.occurred_at),
        )
        await conn.execute("SELECT pg_notify('calculator_billing_runs', %s)", (p.period,))
        log.info("billing run requested", extra={"period": p.period})
