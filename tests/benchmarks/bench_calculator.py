"""Calculator benchmarks (not a test): `uv run python -m tests.benchmarks.bench_calculator [--quotes N]
[--accounts N] [--stack-accounts N [--pg-statements]] [--stream-readings N [--profile]]`.

1. The rating engine's quotes per second on one core, and its cost relative to a baseline measured in
   the same run: a plain loop that does the same number of `Decimal` multiply-and-round steps as the
   quotes have lines (so the ratio says how much the engine adds over the bare arithmetic).
2. The monthly billing run's accounts per second, in-process on a fresh database: N accounts in the
   projection (half with three months of reading history, half without), then a PeriodClosed handled by
   the ingress handler and the billing-run loop until the last account's ChargeCalculated and
   PeriodBilled are appended. No Kafka: nothing is published (the relay is not running).
3. The billing run through the whole stack (the running services; started, and stopped afterwards, if
   they are not running): N new accounts opened through `backoffice.accounts.v1` (the accounts service,
   then every projection), then a PeriodClosed on `backoffice.billing.v1` for the last month that has
   ended; timed from producing it to the ledger's last AccrualPosted of those accounts (the issue's
   target: ≥ 1,000 accounts/s), with the calculator's share (its last ChargeCalculated) and the
   receipts' (the last ReceiptIssued) beside it, and the ratio to step 2's in-process baseline measured
   in the same run. The calculator bills an account as soon as it is known when a run of its period
   exists already (the billing-run membership is order-independent), so while the accounts arrive the
   benchmark holds the calculator's billing-membership advisory lock; it lets go when it produces the
   PeriodClosed, so all N are billed by that run. The accounts stay on the shared topics (12-digit
   numbers under a random `95…` prefix): keep N modest. It prints the CPU per account of each worker and
   of PostgreSQL (all backends, and per database from the backends' titles) until the last
   AccrualPosted, and the receipts worker's and its database's until the last ReceiptIssued: CPU per
   account, not the wall rate, is what to compare on this shared machine. `--pg-statements` adds the top
   statements per database by execution time in the window (pg_stat_statements, when preloaded; execution
   time includes lock waits).
4. The rating stream (`--stream-readings N`), in-process on a fresh database: N accounts (and as many
   more without readings), each with `--stream-months` (4) monthly ReadingSubmitted from January 2025
   appended through the event store as the API/grid ingress does, then `RatingStream.handle` called on
   every envelope in order, month by month (no Kafka, no faust: the agent only feeds `handle`), so later
   readings are rated with a growing history. Prints readings/s (wall), the CPU per reading of this
   process and of the database's PostgreSQL backends, and the engine's quotes/s of step 1 as the
   baseline ratio. `--profile` prints cProfile's top entries (by own time).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import datetime as dt
import os
import pstats
import random
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import orjson
import psycopg
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from backoffice_simulator.kafka import publish
from backoffice_simulator.wire import message
from calculator.adapters.billing_runner import MEMBERSHIP_LOCK_KEY, BillingRunner
from calculator.adapters.ingress import PeriodClosedIngress
from calculator.adapters.rating_agent import RatingStream
from calculator.domain.billing import meter_readings_stream
from calculator.domain.rating import AccountAttributes, MeterReading, rate
from calculator.domain.tariffs import seed_catalog
from calculator.settings import MIGRATIONS_DIR
from calculator.worker import Components
from contracts import backoffice
from contracts.events.calculator import ReadingSubmitted
from service_runtime.db import Connection, open_pool
from service_runtime.migrations import migrate_to_head
from tests.support.messages import period_closed_message
from tests.support.stack import REPO, load_stack_env

TIYN = Decimal("0.01")


def bench_engine(quotes: int) -> float:
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
    return quotes / engine_s


@contextlib.asynccontextmanager
async def _throwaway_calculator_database() -> AsyncIterator[AsyncConnectionPool[Connection]]:
    """A pool on a fresh, migrated calculator database, dropped afterwards."""
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
            yield pool
        finally:
            await pool.close()
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


async def bench_billing(accounts: int, batch_size: int, concurrency: int = 2) -> float:
    async with _throwaway_calculator_database() as pool:
        components = Components()
        async with pool.connection() as conn:
            await components.catalog.ensure_seeded(conn)
            await _populate(conn, accounts)
        period = "2025-09"
        runner = BillingRunner(
            pool,
            components.billing,
            batch_size=batch_size,
            concurrency=concurrency,
            progress_every=max(accounts // 4, 1),
        )
        message = period_closed_message(period)
        async with pool.connection() as conn:  # the pool's connections' backends
            cur = await conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            pids = [int(p) for (p,) in await cur.fetchall()]
        backend0, cpu0 = _backend_cpu(pids), time.process_time()
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
        cpu, backend = time.process_time() - cpu0, _backend_cpu(pids) - backend0
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT count(*) FILTER (WHERE event_type = 'ChargeCalculated'),"
                " count(*) FILTER (WHERE event_type = 'PeriodBilled') FROM events WHERE stream_id LIKE 'billing-period:%%'"
            )
            charges, billed = await cur.fetchone() or (0, 0)
        print(
            f"billing run: {accounts} accounts ({charges} estimated charges, {billed} PeriodBilled) in {elapsed:.2f}s"
            f" -> {accounts / elapsed:,.0f} accounts/s (batch {batch_size}, {concurrency} at a time, one worker,"
            " in-process)"
        )
        print(
            f"  CPU per account: this process {cpu / accounts * 1000:.3f} ms, the database's backends"
            f" {backend / accounts * 1000:.3f} ms (load average {os.getloadavg()[0]:.1f})"
        )
        return accounts / elapsed


async def _populate(
    conn: psycopg.AsyncConnection,  # type: ignore[type-arg]
    accounts: int,
    *,
    with_history: int | None = None,
) -> list[str]:
    """N accounts; the first `with_history` (default: half) with readings at the end of June, July and
    August 2025. Returns the account numbers."""
    rng = random.Random(11)
    nos = [f"{900000000000 + i}" for i in range(accounts)]
    now = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    async with conn.transaction(), conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO accounts (account_no, opened_on, registered_at, billing_synced) VALUES (%s, %s, %s, true)",
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
        for no in nos[
            : accounts // 2 if with_history is None else with_history
        ]:  # readings at the end of June, July, August: the estimate's history
            meter = Decimal(0)
            for version, day in enumerate(
                (dt.date(2025, 6, 30), dt.date(2025, 7, 31), dt.date(2025, 8, 31)), 1
            ):
                used = Decimal(rng.randint(100, 400))
                meter += used
                history.append(
                    (f"bench-{no}-{day}", no, f"M{no}", day, meter, used, uuid.uuid4(), version, now)
                )
        await cur.executemany(
            "INSERT INTO readings (reading_id, account_no, meter_serial, reading_date, value, source,"
            " consumption_kwh, confirmed_implausible, event_id, stream_version, recorded_at)"
            " VALUES (%s, %s, %s, %s, %s, 'grid', %s, false, %s, %s, %s)",
            history,
        )
    return nos


# --- the rating stream ----------------------------------------------------------------------------------


def _backend_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) the PostgreSQL backends with these pids have used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _stream_days(months: int) -> list[dt.date]:
    """The last days of `months` months from January 2025 (the benchmark accounts' opening)."""
    return [dt.date(2025 + (m + 1) // 12, (m + 1) % 12 + 1, 1) - dt.timedelta(days=1) for m in range(months)]


async def bench_stream(accounts: int, months: int, engine_per_s: float | None, profile: bool) -> None:
    async with _throwaway_calculator_database() as pool:
        components = Components()
        envelopes: list[bytes] = []
        async with pool.connection() as conn:
            await components.catalog.ensure_seeded(conn)
            nos = await _populate(conn, 2 * accounts, with_history=0)
            rng = random.Random(13)
            meter = dict.fromkeys(nos[:accounts], Decimal(0))
            for day in _stream_days(months):  # month by month, each account's in date order
                for no in nos[:accounts]:
                    meter[no] += rng.randint(100, 400)
                    reading = ReadingSubmitted(
                        reading_id=f"bench-{no}-{day}",
                        account_no=no,
                        meter_serial=f"M{no}",
                        reading_date=day,
                        value=meter[no],
                        source="grid",
                    )
                    version = await components.store.stream_version(conn, meter_readings_stream(no))
                    envelope = await components.own.append_reading(
                        conn, version, reading, Decimal(0), uuid.uuid4()
                    )
                    envelopes.append(envelope.to_json_bytes())
            await conn.execute("ANALYZE")
        step = RatingStream(pool, components.rating)
        async with pool.connection() as conn:  # the pool's connections' backends
            cur = await conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            pids = [int(p) for (p,) in await cur.fetchall()]
        backend0 = _backend_cpu(pids)
        profiler = cProfile.Profile() if profile else None
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        outcomes: dict[str, int] = {}
        for raw in envelopes:
            outcome = await step.handle(raw)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if profiler is not None:
            profiler.disable()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        readings = len(envelopes)
        backend = _backend_cpu(pids) - backend0
        print(
            f"rating stream: {readings} readings ({outcomes}) in {wall:.2f}s -> {readings / wall:,.0f}"
            f" readings/s; CPU of this process {cpu / readings * 1000:.2f} ms per reading"
            f" (wall {wall / readings * 1000:.2f} ms per reading); PostgreSQL backends' CPU"
            f" {backend / readings * 1000:.2f} ms per reading"
        )
        if engine_per_s:
            print(
                f"  the engine alone: {engine_per_s:,.0f} quotes/s -> stream/engine ="
                f" {readings / wall / engine_per_s:.4f} (1 / {engine_per_s * wall / readings:,.0f})"
            )
        if profiler is not None:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


# --- the whole stack ------------------------------------------------------------------------------------


class _Watch:
    """Canonical events of some topics after the offsets they had when created, for a set of accounts."""

    def __init__(self, bootstrap: str, topics: list[str], accounts: set[str]) -> None:
        self._bootstrap = bootstrap
        self._topics = topics
        self._accounts = accounts
        self.seen: dict[str, dict[str, float]] = {}  # event type → account → when first seen
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> _Watch:
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False)
        await consumer.start()
        await consumer._client.force_metadata_update()  # (topics() does not fill partitions_for_topic)
        partitions = [
            TopicPartition(t, p) for t in self._topics for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
        consumer.assign(partitions)
        for tp, offset in (await consumer.end_offsets(partitions)).items():
            consumer.seek(tp, offset)
        self._consumer = consumer
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    def count(self, event_type: str, period: str | None = None) -> int:
        return len(self.seen.get(event_type if period is None else f"{event_type}:{period}", {}))

    def last(self, event_type: str, period: str) -> float:
        return max(self.seen.get(f"{event_type}:{period}", {0.0: 0.0}).values())

    async def until(self, done: Callable[[], bool], timeout_s: float, what: str) -> None:
        assert self._consumer is not None
        deadline = time.perf_counter() + timeout_s
        while not done():
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{what}: not within {timeout_s:.0f}s")
            batch = await self._consumer.getmany(timeout_ms=100, max_records=5000)
            now = time.perf_counter()
            for records in batch.values():
                for record in records:
                    try:
                        event = orjson.loads(record.value or b"")
                        payload = event["payload"]
                        account = payload.get("account_no")
                    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
                        continue
                    if account not in self._accounts:
                        continue
                    kind = str(event.get("event_type"))
                    self.seen.setdefault(kind, {}).setdefault(account, now)
                    if "period" in payload:
                        self.seen.setdefault(f"{kind}:{payload['period']}", {}).setdefault(account, now)


class _CpuMeter:
    """CPU seconds (user + system, from /proc) used by the stack's processes between `start()` and
    `stop()`: a per-account cost that does not depend on how loaded the shared machine is. Groups: the
    calculator, ledger and receipts workers (their `python -m <svc>.worker` processes) and PostgreSQL
    (every backend: it serves the other engineers' databases too, so that figure is an upper bound)."""

    GROUPS: ClassVar[dict[str, str]] = {
        "calculator-worker": "calculator.worker",
        "ledger-worker": "ledger.worker",
        "receipts-worker": "receipts.worker",
        "postgres": "postgres",
    }

    def __init__(self, bootstrap: str) -> None:
        self._ticks = os.sysconf("SC_CLK_TCK")
        # Only this stack's: workers with our Kafka in their environment, the backends of our postmaster.
        self._env_marker = f"KAFKA_BOOTSTRAP_SERVERS={bootstrap}".encode()
        pidfile = REPO / ".local" / "run" / "postgres.pid"
        self._postmaster = int(pidfile.read_text().strip()) if pidfile.exists() else -1
        self._start: dict[str, dict[int, float]] = {}
        self._databases: dict[int, str] = {}  # PostgreSQL backend pid → its database (from its title)
        self.used: dict[str, float] = {}
        self.by_database: dict[str, float] = {}

    def _sample(self) -> dict[str, dict[int, float]]:
        out: dict[str, dict[int, float]] = {group: {} for group in self.GROUPS}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                pid, ppid = int(entry.name), int(fields[1])
                for group, needle in self.GROUPS.items():
                    if needle not in cmdline or cmdline.startswith(("uv ", "/bin/sh")):
                        continue
                    if group == "postgres":
                        if self._postmaster not in (pid, ppid):
                            continue
                        # A backend's title: "postgres: <user> <database> <host> <state>".
                        title = cmdline.split()
                        self._databases[pid] = (
                            title[2] if len(title) > 3 and title[0] == "postgres:" else "(other)"
                        )
                    elif self._env_marker not in (entry / "environ").read_bytes().split(b"\0"):
                        continue
                    out[group][pid] = (int(fields[11]) + int(fields[12])) / self._ticks
            except (OSError, ValueError, IndexError):
                continue
        return out

    def start(self) -> None:
        self._start = self._sample()

    def stop(self) -> None:
        end = self._sample()
        self.used = {
            group: sum(t - self._start.get(group, {}).get(pid, 0.0) for pid, t in pids.items())
            for group, pids in end.items()
        }
        self.by_database = {}
        for pid, t in end["postgres"].items():
            database = self._databases.get(pid, "(other)")
            used = t - self._start.get("postgres", {}).get(pid, 0.0)
            self.by_database[database] = self.by_database.get(database, 0.0) + used


_STATEMENTS_SQL = (
    "SELECT d.datname, s.queryid, left(regexp_replace(s.query, '\\s+', ' ', 'g'), 150), s.calls,"
    " s.total_exec_time, s.rows FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
    " WHERE d.datname = ANY(%s)"
)


async def _statements(
    admin_dsn: str, databases: list[str]
) -> dict[tuple[str, int], tuple[str, int, float, int]]:
    """pg_stat_statements of these databases (empty if the extension is not there): (db, queryid) →
    (query, calls, total ms, rows)."""
    try:
        async with await psycopg.AsyncConnection.connect(admin_dsn, autocommit=True) as conn:
            cur = await conn.execute(_STATEMENTS_SQL, (databases,))
            return {
                (d, int(q)): (text, int(c), float(t), int(r)) for d, q, text, c, t, r in await cur.fetchall()
            }
    except psycopg.Error:
        return {}


def _print_statements(
    before: dict[tuple[str, int], tuple[str, int, float, int]],
    after: dict[tuple[str, int], tuple[str, int, float, int]],
    accounts: int,
    top: int = 8,
) -> None:
    """The statements that took the most execution time in between, per database."""
    rows: dict[str, list[tuple[float, int, int, str]]] = {}
    for key, (text, calls, total, nrows) in after.items():
        _, c0, t0, r0 = before.get(key, (text, 0, 0.0, 0))
        if calls > c0:
            rows.setdefault(key[0], []).append((total - t0, calls - c0, nrows - r0, text))
    for database, items in sorted(rows.items()):
        items.sort(reverse=True)
        total = sum(i[0] for i in items)
        print(f"    {database}: statements' execution {total / accounts * 1000:.1f} µs per account, top:")
        for ms, calls, nrows, text in items[:top]:
            print(f"      {ms / accounts * 1000:7.1f} µs/acct {calls:6d} calls {nrows:7d} rows  {text}")


def _machine_busy_share(interval_s: float = 1.0) -> float:
    """The share of the machine's CPU time that was busy over `interval_s` (from /proc/stat)."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields), idle

    total0, idle0 = sample()
    time.sleep(interval_s)
    total1, idle1 = sample()
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


async def _settle(max_wait_s: float = 90.0, busy_below: float = 0.25) -> float:
    """Wait (at most `max_wait_s`) until the machine is mostly idle for two seconds in a row: the stack
    has finished with the benchmark's setup (projections, renders) and the run starts from a quiet
    stack. Returns the busy share seen last (other tenants of the machine may keep it above)."""
    deadline = time.perf_counter() + max_wait_s
    quiet = 0
    busy = 1.0
    while time.perf_counter() < deadline and quiet < 2:
        busy = await asyncio.to_thread(_machine_busy_share)
        quiet = quiet + 1 if busy < busy_below else 0
    return busy


def _last_ended_month() -> str:
    today = dt.datetime.now(ZoneInfo("Asia/Almaty")).date()
    last = today.replace(day=1) - dt.timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}"


def _services_running() -> bool:
    pidfile = REPO / ".local" / "run" / "honcho.pid"
    return pidfile.exists() and Path(f"/proc/{pidfile.read_text().strip()}").exists()


def bench_stack(accounts: int, baseline_per_s: float | None, show_statements: bool = False) -> None:
    env = {**load_stack_env(), **os.environ}
    bootstrap = env.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    started_here = not _services_running()
    subprocess.run([str(REPO / "deploy/local/stack.sh"), "services-start"], check=True, timeout=300)
    try:
        asyncio.run(_bench_stack(env, bootstrap, accounts, baseline_per_s, show_statements))
    finally:
        if started_here:
            subprocess.run([str(REPO / "deploy/local/stack.sh"), "services-stop"], check=False, timeout=120)


async def _bench_stack(
    env: dict[str, str], bootstrap: str, accounts: int, baseline_per_s: float | None, show_statements: bool
) -> None:
    period = _last_ended_month()
    first = dt.date(int(period[:4]), int(period[5:]), 1)
    prefix = f"95{random.randrange(10**4):04d}"
    nos = [f"{prefix}{i:06d}" for i in range(1, accounts + 1)]
    messages = []
    for i, no in enumerate(nos):
        opened = backoffice.AccountOpened(
            account_no=no,
            payer_name="Бенчмарков Б.Б.",
            address="г. Алматы, ул. Абая, д. 1",
            residents=1 + i % 4,
            electric_stove=i % 3 == 0,
            living_alone=False,
            tariff_option="tiered" if i % 2 else "flat",
            district_office_code="01",
            opened_on=first,
            meter=backoffice.MeterSpec(
                serial=f"B{no}", digits=6, installed_on=first, initial_reading=Decimal(0)
            ),
        )
        messages.append(message(opened, key=no, id_key=f"bench-account:{no}", at=dt.datetime.now(dt.UTC)))
    watched = ["calculator.events.v1", "ledger.events.v1", "receipts.events.v1"]
    cpu = _CpuMeter(bootstrap)
    async with (
        await psycopg.AsyncConnection.connect(env["CALCULATOR_DATABASE_URL"], autocommit=True) as calc,
        _Watch(bootstrap, watched, set(nos)) as watch,
    ):
        # Nothing bills these accounts before the PeriodClosed: hold the run membership (see the doc).
        await calc.execute("SELECT pg_advisory_lock(%s)", (MEMBERSHIP_LOCK_KEY,))
        try:
            ingest = time.perf_counter()
            await publish(bootstrap, messages, show_progress=False)

            async def known() -> bool:
                cur = await calc.execute("SELECT count(*) FROM accounts WHERE account_no = ANY(%s)", (nos,))
                found = await cur.fetchone()
                return found is not None and int(found[0]) == accounts

            deadline = time.perf_counter() + 600
            while not await known():
                if time.perf_counter() > deadline:
                    raise TimeoutError("the calculator did not get the accounts within 600s")
                await asyncio.sleep(0.5)
            await watch.until(
                lambda: watch.count("OpeningBalanceSet") == accounts, 600, "the ledger's accounts"
            )
            # The run starts on an idle stack: receipts (the last to project the openings: accounts, then
            # the ledger's opening balances) has caught up too, so the setup's backlog is not measured.
            async with await psycopg.AsyncConnection.connect(
                env["RECEIPTS_DATABASE_URL"], autocommit=True
            ) as receipts_db:

                async def receipts_caught_up() -> bool:
                    cur = await receipts_db.execute(
                        "SELECT (SELECT count(*) FROM accounts WHERE account_no = ANY(%s)),"
                        " (SELECT count(*) FROM ledger_entries WHERE account_no = ANY(%s) AND kind = 'opening')",
                        (nos, nos),
                    )
                    row = await cur.fetchone()
                    return row is not None and int(row[0]) == accounts and int(row[1]) >= accounts

                while not await receipts_caught_up():
                    if time.perf_counter() > deadline:
                        raise TimeoutError("receipts did not get the accounts within 600s")
                    await asyncio.sleep(0.5)
            print(
                f"  {accounts} accounts opened through the stack in {time.perf_counter() - ingest:.1f}s"
                f" (prefix {prefix}, period {period})"
            )
            busy = await _settle()
            print(f"  the machine's CPU {busy:.0%} busy when the run starts (waited up to 90 s for < 25 %)")
            closed = backoffice.PeriodClosed(period=period)
            close = message(closed, key=period, id_key=f"bench-close:{prefix}", at=dt.datetime.now(dt.UTC))
            databases = ["calculator", "ledger", "receipts"]
            statements0 = await _statements(env["PG_ADMIN_URL"], databases) if show_statements else {}
            wall0 = dt.datetime.now(dt.UTC)
            started = time.perf_counter()
            cpu.start()
            load_before = os.getloadavg()[0]
            await publish(bootstrap, [close], show_progress=False)
        finally:
            await calc.execute("SELECT pg_advisory_unlock(%s)", (MEMBERSHIP_LOCK_KEY,))
        await watch.until(
            lambda: watch.count("AccrualPosted", period) == accounts, 900, "the ledger's AccrualPosted"
        )
        ledger_s = watch.last("AccrualPosted", period) - started
        cpu.stop()
        used_at_ledger, by_database_at_ledger = dict(cpu.used), dict(cpu.by_database)
        statements1 = await _statements(env["PG_ADMIN_URL"], databases) if show_statements else {}
        load_after = os.getloadavg()[0]
        cur = await calc.execute(
            "SELECT max(occurred_at) FROM events WHERE event_type = 'ChargeCalculated'"
            " AND payload->>'account_no' = ANY(%s) AND payload->>'period' = %s",
            (nos, period),
        )
        row = await cur.fetchone()
        calculator_s = (row[0] - wall0).total_seconds() if row and row[0] else float("nan")
        receipts_s: float | None = None
        try:
            await watch.until(
                lambda: watch.count("ReceiptIssued", period) == accounts, 600, "the receipts' ReceiptIssued"
            )
            receipts_s = watch.last("ReceiptIssued", period) - started
            cpu.stop()  # again: until the last bill (the renderer's PDFs go on afterwards)
        except TimeoutError:
            pass
    print(
        f"billing run through the stack: {accounts} accounts, PeriodClosed on Kafka -> the ledger's last"
        f" AccrualPosted in {ledger_s:.2f}s -> {accounts / ledger_s:,.0f} accounts/s"
        f" (target >= 1,000: {'met' if accounts / ledger_s >= 1000 else 'NOT met'})"
    )
    print(
        f"  calculator (PeriodClosed -> last ChargeCalculated appended): {calculator_s:.2f}s ->"
        f" {accounts / calculator_s:,.0f} accounts/s"
    )
    print(
        f"  CPU used until the last AccrualPosted (ms per account; load average {load_before:.1f} ->"
        f" {load_after:.1f} on {os.cpu_count()} cores): "
        + ", ".join(f"{group} {used / accounts * 1000:.2f}" for group, used in used_at_ledger.items())
    )
    print(
        "    PostgreSQL by database (ms per account; backends that exited in between are not counted): "
        + ", ".join(
            f"{database} {used / accounts * 1000:.2f}"
            for database, used in sorted(by_database_at_ledger.items(), key=lambda kv: -kv[1])
            if used > 0
        )
    )
    if statements1:
        print("  PostgreSQL statements until the last AccrualPosted (pg_stat_statements, execution time):")
        _print_statements(statements0, statements1, accounts)
    if receipts_s is not None:
        print(
            f"  receipts (-> last ReceiptIssued): {receipts_s:.2f}s -> {accounts / receipts_s:,.0f} accounts/s;"
            f" CPU until then (ms per account): receipts-worker {cpu.used['receipts-worker'] / accounts * 1000:.2f},"
            f" its database's backends {cpu.by_database.get('receipts', 0.0) / accounts * 1000:.2f}"
        )
    else:
        print("  receipts: not every bill issued within 600s")
    if baseline_per_s:
        print(
            f"  ratio to the in-process billing run measured above: {accounts / ledger_s / baseline_per_s:.2f}"
            f" (whole stack / in-process, accounts/s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quotes", type=int, default=20_000)
    parser.add_argument("--accounts", type=int, default=5_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=2, help="batches billed at once (in-process run)")
    parser.add_argument("--skip-billing", action="store_true")
    parser.add_argument(
        "--stack-accounts", type=int, default=1000, help="accounts of the whole-stack run (0: skip it)"
    )
    parser.add_argument(
        "--stream-readings",
        type=int,
        default=0,
        help="accounts whose readings go through RatingStream.handle (0: skip)",
    )
    parser.add_argument(
        "--stream-months", type=int, default=4, help="readings per account (monthly from January 2025)"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the rating stream")
    parser.add_argument(
        "--pg-statements",
        action="store_true",
        help="whole-stack run: the top statements per database (pg_stat_statements, if preloaded)",
    )
    args = parser.parse_args()
    engine_per_s = bench_engine(args.quotes)
    if args.stream_readings > 0:
        asyncio.run(bench_stream(args.stream_readings, args.stream_months, engine_per_s, args.profile))
    baseline = None
    if not args.skip_billing:
        baseline = asyncio.run(bench_billing(args.accounts, args.batch, args.concurrency))
    if args.stack_accounts > 0:
        bench_stack(args.stack_accounts, baseline, args.pg_statements)


if __name__ == "__main__":
    main()
