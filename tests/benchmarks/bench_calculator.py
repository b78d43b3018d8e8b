"""Calculator benchmarks (not a test): `uv run python -m tests.benchmarks.bench_calculator [--quotes N] [--accounts N]`.

1. The rating engine's quotes per second on one core, and its cost relative to a baseline measured in
   the same run: a plain loop that does the same number of `Decimal` multiply-and-round steps as the
   quotes have lines (so the ratio says how much the engine adds over the bare arithmetic).
2. The monthly billing run's accounts per second, in-process on a fresh database: N accounts in the
   projection (half with three months of history, half without), then a PeriodClosed handled by the
   ingress handler and the billing-run loop until the last account's ChargeCalculated and PeriodBilled
   are appended. No Kafka: nothing is published (the relay is not running), so the shared topics stay
   clean.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import time
import uuid
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from calculator.adapters.billing_runner import BillingRunner
from calculator.adapters.ingress import PeriodClosedIngress
from calculator.domain.rating import AccountAttributes, MeterReading, rate
from calculator.domain.tariffs import seed_catalog
from calculator.settings import MIGRATIONS_DIR
from calculator.worker import Components
from contracts.backoffice import PeriodClosed
from contracts.envelope import IngressEnvelope
from service_runtime.consumers import IngressMessage
from service_runtime.db import open_pool
from service_runtime.migrations import migrate_to_head
from tests.support.stack import load_stack_env

TIYN = Decimal("0.01")


def bench_engine(quotes: int) -> None:
    catalog = seed_catalog()
    rng = random.Random(7)
    cases = []
    for i in range(quotes):
        option = "tiered" if i % 2 else "flat"
        start = dt.date(2025, 1, 1) + dt.timedelta(days=rng.randint(0, 330))
        days = rng.randint(25, 35)
        prev = Decimal(rng.randint(0, 500_000)) / 100
        used = Decimal(rng.randint(0, 80_000)) / 100
        attrs = AccountAttributes(option, rng.randint(1, 5), rng.random() < 0.3, rng.random() < 0.1, 6)  # type: ignore[arg-type]
        cases.append(
            (MeterReading(start, prev), MeterReading(start + dt.timedelta(days=days), prev + used), attrs)
        )
    started = time.process_time()
    lines = 0
    for previous, current, attrs in cases:
        lines += len(rate(previous, current, attrs, catalog).lines)
    engine_s = time.process_time() - started

    values = [(Decimal(rng.randint(0, 80_000)) / 100, Decimal("16.36")) for _ in range(lines)]
    started = time.process_time()
    total = Decimal(0)
    for kwh, price in values:
        total += (kwh * price).quantize(TIYN, rounding=ROUND_HALF_UP)
    baseline_s = time.process_time() - started

    print(
        f"rating engine: {quotes} quotes ({lines} lines) in {engine_s:.3f}s CPU -> {quotes / engine_s:,.0f} quotes/s on one core"
    )
    print(
        f"  baseline (plain Decimal multiply-and-round, {lines} steps): {baseline_s:.4f}s -> engine/baseline = {engine_s / baseline_s:.1f}x"
    )
    print(f"  target >= 20,000 quotes/s: {'met' if quotes / engine_s >= 20_000 else 'NOT met'}")


async def bench_billing(accounts: int, batch_size: int) -> None:
    env = {**load_stack_env(), **os.environ}
    admin = env["PG_ADMIN_URL"]
    name = f"bench_calc_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))
    try:
        await asyncio.to_thread(migrate_to_head, MIGRATIONS_DIR, dsn)
        pool = await open_pool(dsn, max_size=4, name="bench")
        try:
            components = Components()
            async with pool.connection() as conn:
                await components.catalog.ensure_seeded(conn)
                await _populate(conn, accounts)
            period = "2025-09"
            runner = BillingRunner(
                pool, components.billing, batch_size=batch_size, progress_every=max(accounts // 4, 1)
            )
            message = IngressMessage(
                IngressEnvelope(
                    event_id=uuid.uuid4(),
                    event_type="PeriodClosed",
                    schema_version=1,
                    occurred_at=dt.datetime.now(dt.UTC),
                    producer="backoffice",
                    payload={"period": period},
                ),
                PeriodClosed(period=period),
                period,
                "backoffice.billing.v1",
                0,
                0,
            )
            started = time.perf_counter()
            async with pool.connection() as conn, conn.transaction():
                await PeriodClosedIngress().handle(conn, message)
            while await runner.run_once():
                async with pool.connection() as conn:
                    cur = await conn.execute("SELECT count(*) FROM billing_runs WHERE completed_at IS NULL")
                    row = await cur.fetchone()
                if row and row[0] == 0:
                    break
            elapsed = time.perf_counter() - started
            async with pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT count(*) FILTER (WHERE event_type = 'ChargeCalculated'),"
                    " count(*) FILTER (WHERE event_type = 'PeriodBilled') FROM events WHERE stream_id LIKE 'billing-period:%%'"
                )
                charges, billed = await cur.fetchone() or (0, 0)
            print(
                f"billing run: {accounts} accounts ({charges} estimated charges, {billed} PeriodBilled) in {elapsed:.2f}s"
                f" -> {accounts / elapsed:,.0f} accounts/s (batch {batch_size}, one worker, in-process)"
            )
        finally:
            await pool.close()
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


async def _populate(conn: psycopg.AsyncConnection, accounts: int) -> None:  # type: ignore[type-arg]
    rng = random.Random(11)
    nos = [f"{900000000000 + i}" for i in range(accounts)]
    now = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    async with conn.transaction(), conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO accounts (account_no, opened_on, registered_at) VALUES (%s, %s, %s)",
            [(no, dt.date(2025, 1, 1), now) for no in nos],
        )
        attrs = []
        for no in nos:
            for attribute, value in (
                ("residents", str(rng.randint(0, 5))),
                ("tariff_option", '"tiered"' if rng.random() < 0.5 else '"flat"'),
                ("electric_stove", "true" if rng.random() < 0.3 else "false"),
                ("living_alone", "false"),
            ):
                attrs.append((no, attribute, dt.date(2025, 1, 1), 1, value))
        await cur.executemany(
            "INSERT INTO account_attributes (account_no, attribute, effective_from, stream_version, value)"
            " VALUES (%s, %s, %s, %s, %s::jsonb)",
            attrs,
        )
        await cur.executemany(
            "INSERT INTO meters (account_no, serial, digits, installed_on, initial_reading) VALUES (%s, %s, 6, %s, 0)",
            [(no, f"M{no}", dt.date(2025, 1, 1)) for no in nos],
        )
        history = []
        for no in nos[: accounts // 2]:
            for month in (6, 7, 8):
                start = dt.date(2025, month, 1)
                end = dt.date(2025, month + 1, 1)
                history.append(
                    (
                        f"bench-{no}-{month}",
                        no,
                        f"2025-{month:02d}",
                        start,
                        end,
                        (end - start).days,
                        Decimal(rng.randint(100, 400)),
                        uuid.uuid4(),
                    )
                )
        await cur.executemany(
            "INSERT INTO charges (charge_id, account_no, period, estimated, from_date, to_date, days, consumption_kwh,"
            " tariff_option_applied, net_total, vat, total, event_id)"
            " VALUES (%s, %s, %s, false, %s, %s, %s, %s, 'flat', 0, 0, 0, %s)",
            history,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quotes", type=int, default=20_000)
    parser.add_argument("--accounts", type=int, default=5_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--skip-billing", action="store_true")
    args = parser.parse_args()
    bench_engine(args.quotes)
    if not args.skip_billing:
        asyncio.run(bench_billing(args.accounts, args.batch))


if __name__ == "__main__":
    main()
