"""The monthly billing run's worker loop: shares the accounts of a closed period in batches.

`PeriodClosed` is keyed by period, so one consumer receives it; it only records the run
(`billing_runs`). Then every calculator worker runs this loop: it lists the run's accounts once
(`billing_run_items`: every account opened on or before the period's last day), and claims batches of
them with `FOR UPDATE SKIP LOCKED`, so any number of workers share one run. Each batch is one
transaction: its charges, its PeriodBilled events and its `done` marks commit together, so a crash loses
nothing and repeats nothing. Progress: the `billing_run_accounts_total` counter and a log line every
`progress_every` accounts.

Membership does not depend on the order messages arrive in (BACKOFFICE_EVENTS.md): an account that
becomes known after its period was closed — its AccountOpened late, or the run populated or even
completed already — is still billed for it. The accounts projection leaves a new account
`billing_synced = false`; each turn of this loop adds the unsynced accounts to the items of every
populated run whose period they were active in and re-opens those runs (`sync_new_accounts`).
Populating a run and syncing accounts take the same advisory lock, so an account is never missed
between the two (it is committed either before the populating statement, which lists it, or after, and
then the sync finds the run populated). Billing an account twice is impossible: billed periods are
skipped and every id is deterministic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter as Tally

from prometheus_client import Counter, Gauge
from psycopg_pool import AsyncConnectionPool

from calculator.adapters.loops import Wakeup, run_turns
from calculator.application.charges import BillingService
from calculator.domain.billing import period_bounds
from service_runtime.db import Connection

log = logging.getLogger(__name__)

BILLING_ACCOUNTS = Counter("billing_run_accounts_total", "Accounts handled by the billing run", ["outcome"])
BILLING_REMAINING = Gauge("billing_run_accounts_remaining", "Accounts of open billing runs not yet billed")
LATE_ACCOUNTS = Counter(
    "billing_run_late_accounts_total", "Accounts added to billing runs populated before they were known"
)

BILLING_CHANNEL = "calculator_billing_runs"  # NOTIFYed by PeriodClosedIngress: a run to start
MEMBERSHIP_LOCK_KEY = 7_202_611  # advisory lock: populating a run vs. syncing new accounts into runs
SYNC_BATCH = 5000


class BillingRunner:
    def __init__(
        self,
        pool: AsyncConnectionPool[Connection],
        billing: BillingService,
        *,
        batch_size: int = 500,
        concurrency: int = 2,
        progress_every: int = 1000,
        idle_wait_s: float = 0.5,
    ) -> None:
        self._pool = pool
        self._billing = billing
        self._batch_size = batch_size
        self._concurrency = max(concurrency, 1)
        self._progress_every = progress_every
        self._idle_wait_s = idle_wait_s
        self._stopping = False
        self._wakeup = Wakeup(pool.conninfo, BILLING_CHANNEL, idle_wait_s)
        self.accounts_done = 0

    def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()

    async def run(self) -> None:
        """The loop: a turn as soon as a PeriodClosed is recorded (its NOTIFY), else every `idle_wait_s`."""
        self._wakeup.start()
        try:
            await run_turns(
                self.run_once, what="billing run", stopping=lambda: self._stopping, idle=self._wakeup
            )
        finally:
            await self._wakeup.stop()

    async def run_once(self) -> bool:
        """Add new accounts to the runs of their periods, then work on the oldest open run until it is
        done; False when there is none."""
        await self.sync_new_accounts()
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT period, requested_at, populated_at IS NOT NULL FROM billing_runs"
                " WHERE completed_at IS NULL ORDER BY period LIMIT 1"
            )
            row = await cur.fetchone()
        if row is None:
            return False
        period, requested_at, populated = str(row[0]), row[1], bool(row[2])
        if not populated:
            await self._populate(period)
        await self._work(period)
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE billing_runs SET completed_at = now() WHERE period = %s AND requested_at = %s"
                " AND populated_at IS NOT NULL"
                " AND NOT EXISTS (SELECT 1 FROM billing_run_items WHERE period = %s AND NOT done)",
                (period, requested_at, period),
            )
        return True

    async def sync_new_accounts(self) -> int:
        """Add the accounts not synced yet to every populated run of a period they were active in (opened
        on or before its last day), re-open those runs, and mark the accounts synced. Returns how many
        run items were added."""
        added = 0
        while not self._stopping:
            async with self._pool.connection() as conn, conn.transaction():
                cur = await conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (MEMBERSHIP_LOCK_KEY,))
                row = await cur.fetchone()
                if not (row and row[0]):
                    return added  # another worker is at it (or populating): next turn
                cur = await conn.execute(
                    "SELECT account_no, opened_on FROM accounts WHERE NOT billing_synced"
                    " ORDER BY account_no LIMIT %s FOR UPDATE SKIP LOCKED",
                    (SYNC_BATCH,),
                )
                accounts = await cur.fetchall()
                if not accounts:
                    return added
                nos = [str(a) for a, _ in accounts]
                cur = await conn.execute(
                    "INSERT INTO billing_run_items (period, account_no)"
                    " SELECT r.period, a.account_no FROM billing_runs r,"
                    " unnest(%s::text[], %s::date[]) AS a(account_no, opened_on)"
                    " WHERE r.populated_at IS NOT NULL"
                    " AND a.opened_on < (to_date(r.period || '-01', 'YYYY-MM-DD') + interval '1 month')"
                    " ON CONFLICT (period, account_no) DO NOTHING RETURNING period",
                    (nos, [d for _, d in accounts]),
                )
                periods = Tally(str(r[0]) for r in await cur.fetchall())
                for period, count in sorted(periods.items()):
                    await conn.execute(
                        "UPDATE billing_runs SET completed_at = NULL, accounts_total = accounts_total + %s"
                        " WHERE period = %s",
                        (count, period),
                    )
                await conn.execute(
                    "UPDATE accounts SET billing_synced = true WHERE account_no = ANY(%s)", (nos,)
                )
            if periods:
                added += sum(periods.values())
                LATE_ACCOUNTS.inc(sum(periods.values()))
                log.info(
                    "accounts added to the billing runs of their periods",
                    extra={"accounts": len(nos), "items": dict(periods)},
                )
        return added

    async def _populate(self, period: str) -> None:
        _, following = period_bounds(period)
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MEMBERSHIP_LOCK_KEY,))
            cur = await conn.execute(
                "INSERT INTO billing_run_items (period, account_no)"
                " SELECT %s, a.account_no FROM accounts a WHERE a.opened_on < %s"
                " ON CONFLICT (period, account_no) DO NOTHING",
                (period, following),
            )
            added = cur.rowcount
            cur = await conn.execute(
                "UPDATE billing_runs SET populated_at = now(),"
                " accounts_total = (SELECT count(*) FROM billing_run_items WHERE period = %s)"
                " WHERE period = %s RETURNING accounts_total",
                (period, period),
            )
            total_row = await cur.fetchone()
        log.info(
            "billing run started",
            extra={"period": period, "accounts": total_row[0] if total_row else 0, "new_accounts": added},
        )

    async def _work(self, period: str) -> None:
        """Bill the run's open items in batches, `concurrency` batches at a time (each its own
        transaction and connection): one batch computes in Python while another waits for PostgreSQL."""
        started = time.perf_counter()
        tally: Tally[str] = Tally()
        progress = {"done": 0, "next_report": self._progress_every}

        async def lane() -> None:
            while not self._stopping:
                async with self._pool.connection() as conn, conn.transaction():
                    # Claim and mark done in one statement: the marks commit with the batch's charges
                    # (a failed batch rolls them back), and other lanes skip the claimed rows meanwhile.
                    cur = await conn.execute(
                        "WITH claimed AS MATERIALIZED (SELECT account_no FROM billing_run_items"
                        " WHERE period = %s AND NOT done ORDER BY account_no LIMIT %s FOR UPDATE SKIP LOCKED)"
                        " UPDATE billing_run_items i SET done = true FROM claimed c"
                        " WHERE i.period = %s AND i.account_no = c.account_no RETURNING i.account_no",
                        (period, self._batch_size, period),
                    )
                    batch = sorted(str(r[0]) for r in await cur.fetchall())
                    if not batch:
                        return
                    outcomes = await self._billing.bill_accounts(conn, period, batch)
                for outcome in outcomes.values():
                    BILLING_ACCOUNTS.labels(outcome).inc()
                    tally[outcome] += 1
                progress["done"] += len(batch)
                self.accounts_done += len(batch)
                if progress["done"] >= progress["next_report"]:
                    progress["next_report"] += self._progress_every
                    await self._report(period, progress["done"], started, tally)

        async with asyncio.TaskGroup() as lanes:
            for _ in range(self._concurrency):
                lanes.create_task(lane())
        if progress["done"]:
            await self._report(period, progress["done"], started, tally, final=True)

    async def _report(
        self, period: str, done: int, started: float, tally: Tally[str], *, final: bool = False
    ) -> None:
        remaining = 0
        with contextlib.suppress(Exception):
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT count(*) FROM billing_run_items WHERE period = %s AND NOT done", (period,)
                )
                row = await cur.fetchone()
                remaining = int(row[0]) if row else 0
        BILLING_REMAINING.set(remaining)
        elapsed = max(time.perf_counter() - started, 1e-9)
        log.info(
            "billing run finished by this worker" if final else "billing run progress",
            extra={
                "period": period,
                "accounts_done": done,
                "accounts_remaining": remaining,
                "accounts_per_s": round(done / elapsed, 1),
                "outcomes": dict(tally),
            },
        )
