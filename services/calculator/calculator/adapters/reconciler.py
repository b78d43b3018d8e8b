"""The reconciler's loop: brings the charges of the accounts in `reconcile_requests` to today's facts.

A late fact (a ResidentsChanged, TariffOptionChanged or MeterReplaced from the accounts projection; a new
tariff row or VAT rate from the tariff ingress; an actual reading behind an open estimate from the rating
stream) asks for its account(s) in the same transaction that records it, by inserting the account or
bumping its request's `version`. This loop takes the oldest requests, reconciles each account in its own
transaction (`ReconcileService.reconcile`: the account's lock, then the adjustments), and then removes
the request only if its version is still the one it read: a fact that arrived meanwhile keeps it for
another turn. Any number of workers may run it (reconciling twice posts nothing the second time).

The same loop sweeps the parked grid readings now and then: a reading parked for an account or meter
not known yet is applied by the accounts projection when that arrives; the sweep is the safety net that
applies any the projection could not (e.g. one left parked by a rolled-back batch).
"""

from __future__ import annotations

import asyncio
import logging
import time

from prometheus_client import Counter
from psycopg_pool import AsyncConnectionPool

from calculator.adapters.ingress import ParkedGridReadings
from calculator.adapters.loops import run_turns
from calculator.adapters.own_events import OwnEvents
from calculator.application.charges import ReconcileService
from service_runtime.db import Connection

log = logging.getLogger(__name__)

RECONCILED = Counter(
    "calculator_reconciled_accounts_total", "Accounts reconciled with the facts", ["outcome"]
)


class Reconciler:
    def __init__(
        self,
        pool: AsyncConnectionPool[Connection],
        service: ReconcileService,
        own: OwnEvents,
        *,
        batch_size: int = 100,
        idle_wait_s: float = 0.5,
        parked_sweep_s: float = 30.0,
    ) -> None:
        self._pool = pool
        self._service = service
        self._unpark = ParkedGridReadings(own)
        self._batch_size = batch_size
        self._idle_wait_s = idle_wait_s
        self._parked_sweep_s = parked_sweep_s
        self._next_sweep = time.monotonic() + parked_sweep_s
        self._stopping = False
        self.adjustments = 0

    def stop(self) -> None:
        self._stopping = True

    async def run(self) -> None:
        await run_turns(self._turn, what="reconciling", stopping=lambda: self._stopping, idle=self._idle)

    async def _turn(self) -> int:
        worked = await self.run_once()
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + self._parked_sweep_s
            await self.sweep_parked()
        return worked

    async def _idle(self) -> None:
        await asyncio.sleep(self._idle_wait_s)

    async def run_once(self) -> int:
        """Reconcile the oldest requested accounts; returns how many requests were handled."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT account_no, version FROM reconcile_requests ORDER BY requested_at, account_no LIMIT %s",
                (self._batch_size,),
            )
            requests = [(str(a), int(v)) for a, v in await cur.fetchall()]
        for account_no, version in requests:
            if self._stopping:
                break
            async with self._pool.connection() as conn:
                adjustments = await self._service.reconcile(conn, account_no)
                await conn.execute(
                    "DELETE FROM reconcile_requests WHERE account_no = %s AND version = %s",
                    (account_no, version),
                )
            self.adjustments += len(adjustments)
            RECONCILED.labels("adjusted" if adjustments else "unchanged").inc()
        return len(requests)

    async def sweep_parked(self) -> int:
        """Try the parked grid readings of accounts that are known now; returns the accounts tried."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT DISTINCT p.account_no FROM parked_grid_readings p JOIN accounts a USING (account_no)"
                " WHERE p.outcome IS NULL LIMIT 500"
            )
            accounts = [str(r[0]) for r in await cur.fetchall()]
        for account_no in accounts:
            if self._stopping:
                break
            async with self._pool.connection() as conn, conn.transaction():
                await self._unpark(conn, account_no)
        return len(accounts)
