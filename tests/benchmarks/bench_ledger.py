"""Benchmarks of the ledger service (not part of the test run's pass/fail).

    uv run python -m tests.benchmarks.bench_ledger [--accounts N] [--payments M] [--scattered] [--one-process]

Everything runs against a fresh database and private Kafka topics (created, then dropped/deleted), so the
shared topics and other tests never see the benchmark's events.

1. Ingest: M back-office PaymentReported messages (JSON envelopes keyed by account, over N opened
   accounts; dated in date order over 300 days with 3 % late by up to 60 days, as banks report them, or
   with `--scattered` on any day in any order, where nearly every payment re-rolls later months) wait
   on the payments topic; then the ledger worker starts in a process of its own (its
   consumers, including the idle ones, and the outbox relay, as `python -m ledger.worker run` has them;
   the inputs write the read models inline, or with LEDGER_INLINE_READ_MODELS=false a
   `ledger-read-models` consumer does, from Kafka) and runs until every payment is visible in the read
   models (`ledger_payments` and the balances of `ledger_period_streams` / `ledger_periods`) and its relay
   has published every event. Reported: events/s from start to the last balance, and sustained (from
   10 % to 100 % visible, which leaves out the consumers' group join), the worker process's CPU time and
   peak RSS, and the CPU per event of the worker, of the PostgreSQL backends connected to the
   benchmark's database and of the Kafka broker (shared: an upper bound). The worker runs as deployed
   (deploy/local/Procfile, the k8s ledger-worker and ledger-relay-worker): split in two processes, the
   inputs (each with `LEDGER_INGRESS_CONSUMERS` consumers) | the relay (with the read models from Kafka:
   inputs | relay + read models); `--one-process` runs all of it in one process instead.
2. Rebuild: `ledger-periods` and `ledger-payments` refolded from the event store, in a process of its
   own: events read per second, and its peak RSS.
3. Baseline, in the same run: raw aiokafka consume of the same M messages + one multi-row INSERT per
   fetched batch into a PostgreSQL table, in a process of its own. Both rates are printed as a ratio to it.

Targets (issue 5): ingest ≥ 5,000 events/s, rebuild ≥ 20,000 events/s, a worker under 200 MB RSS. The
machine is shared and noisy (2 cores with PostgreSQL, Kafka and other engineers' processes): ratios to
the baseline, and the worker's events per CPU-second, mean more than absolute rates.

Tuning aids (environment): BENCH_PROFILE=worker|rebuild|baseline writes a cProfile dump of that phase to
/tmp/bench_ledger_<phase>.prof; BENCH_SAMPLE=<phase> a sampling profile (low overhead, true shares) to
/tmp/bench_ledger_<phase>.samples.txt; BENCH_ONLY=backoffice-ingress[,relay,...] runs only those parts of the
worker in the ingest phase; BENCH_TRACEMALLOC=1 prints where the worker's Python memory is;
BENCH_PG_STATEMENTS=1 writes the ingest phase's costliest statements (pg_stat_statements) to
/tmp/bench_ledger_statements.txt. Each
phase's stderr is appended to /tmp/bench_ledger_<phase>.log. LEDGER_* settings apply (e.g.
LEDGER_CONSUMER_BATCH_SIZE, LEDGER_AGGREGATE_CACHE_EVENTS).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import psycopg
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from psycopg import sql

from contracts import backoffice as bo
from contracts.envelope import Envelope
from contracts.events import accounts as acc
from contracts.events import ledger as ledger_events
from contracts.registry import EventRegistry
from service_runtime.consumers import ConsumerRunner
from service_runtime.db import open_pool
from service_runtime.kafka import idempotent_producer
from service_runtime.relay import OutboxRelay
from service_runtime.worker import tune_gc
from tests.support.stack import load_stack_env

PARTITIONS = 6


@dataclass(frozen=True)
class Topics:
    payments: str
    accounts: str
    ledger: str

    @classmethod
    def fresh(cls) -> Topics:
        run = uuid.uuid4().hex[:8]
        return cls(
            f"bench-{run}.backoffice.payments", f"bench-{run}.accounts.events", f"bench-{run}.ledger.events"
        )

    def all(self) -> list[str]:
        names = [self.payments, self.accounts, self.ledger]
        return names + [f"{n}.dlq" for n in names]


def bench_registry(topics: Topics) -> EventRegistry:
    """The real payload models, registered on the benchmark's private topics."""
    registry = EventRegistry()
    registry.register("PaymentReported", version=1, topic=topics.payments)(bo.PaymentReported)
    registry.register("PaymentCancelled", version=1, topic=topics.payments)(bo.PaymentCancelled)
    for name in ("AccountOpened", "AccountLinked", "AccountUnlinked"):
        registry.register(name, version=1, topic=topics.accounts)(getattr(acc, name))
    for name in (
        "OpeningBalanceSet",
        "AccrualPosted",
        "CorrectionPosted",
        "PaymentReceived",
        "PaymentReversed",
    ):
        registry.register(name, version=1, topic=topics.ledger)(getattr(ledger_events, name))
    return registry


# --- the phases, each run in a process of its own ------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident memory. `getrusage(RUSAGE_SELF).ru_maxrss` would do, but on Linux it
    carries the parent's high-water mark across fork and exec; /proc/self/status's VmHWM starts afresh
    at exec. Both are read; the smaller is this process's own."""
    rusage_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return min(rusage_mb, int(line.split()[1]) / 1024)
    except OSError:
        pass
    return rusage_mb


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
KAFKA_PID_FILE = os.path.join(os.path.dirname(__file__), "..", "..", ".local", "run", "kafka.pid")


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (0 if it is gone or not readable)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    except (OSError, IndexError, ValueError):
        return 0.0


async def backend_cpu(probe: psycopg.AsyncConnection[Any]) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend connected to the benchmark's database (the stack's
    PostgreSQL runs on this machine)."""
    cur = await probe.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
    return {int(pid): process_cpu_seconds(int(pid)) for (pid,) in await cur.fetchall()}


def kafka_cpu() -> float:
    try:
        with open(KAFKA_PID_FILE) as f:
            return process_cpu_seconds(int(f.read().strip()))
    except (OSError, ValueError):
        return 0.0


def worker_handlers(topics: Topics, registry: EventRegistry, bootstrap: str) -> list[Any]:
    """The worker's consumers (ledger.worker.build_handlers) on the benchmark's topics."""
    from ledger.adapters.dead_letters import DeadLetterSender
    from ledger.adapters.ingress import BackofficeIngress, UpstreamIngress
    from ledger.adapters.projections import AccountLinksProjection, LedgerReadModels
    from ledger.adapters.streams import AggregateCache, StoreConfig
    from ledger.settings import LedgerSettings

    defaults = LedgerSettings()
    inline = defaults.inline_read_models
    config = StoreConfig(
        topic=topics.ledger, producer="ledger", event_registry=registry, inline_read_models=inline
    )
    dead_letters = DeadLetterSender(bootstrap, "ledger-bench.parked")
    cache = AggregateCache(defaults.aggregate_cache_events)
    inputs = defaults.ingress_consumers
    handlers: list[Any] = [
        *[BackofficeIngress(config, dead_letters, cache=cache, topics=(topics.payments,))] * inputs,
        *[UpstreamIngress(config, dead_letters, cache=cache, topics=(topics.accounts,))] * inputs,
        AccountLinksProjection(topics=(topics.accounts,)),
    ]
    if not inline:  # LEDGER_INLINE_READ_MODELS=false: the read models from Kafka, as before
        handlers.insert(-1, LedgerReadModels(topics=(topics.ledger,)))
    return handlers


_PROGRESS_SQL = (
    "SELECT (SELECT coalesce(max(position), 0) FROM events),"
    " (SELECT coalesce(max(position), 0) FROM outbox_relay_state)"
)
_EXACT_PROGRESS_SQL = (
    "SELECT (SELECT coalesce(sum(version), 0) FROM ledger_period_streams),"
    " (SELECT count(*) FROM ledger_payments), (SELECT count(*) FROM events)"
)


async def worker_phase(args: dict[str, Any]) -> dict[str, Any]:
    """Run the ledger worker until the read models show `target_versions` applied and
    `target_payments` payments; report timings."""
    from ledger.settings import LedgerSettings

    topics = Topics(**args["topics"])
    dsn, bootstrap = args["dsn"], args["bootstrap"]
    settings = LedgerSettings(database_url=dsn, kafka_bootstrap_servers=bootstrap)
    registry = bench_registry(topics)
    pool = await open_pool(dsn, max_size=settings.database_pool_size, name="ledger-bench-worker")
    relay = OutboxRelay(pool, dsn, bootstrap, service="ledger-bench", batch_size=settings.relay_batch_size)
    runners = [
        ConsumerRunner(
            handler,
            pool,
            bootstrap,
            service=f"ledger-bench-{args['group']}",
            batch_size=settings.consumer_batch_size,
            event_registry=registry,
        )
        for handler in worker_handlers(topics, registry, bootstrap)
    ]
    only = os.environ.get("BENCH_ONLY")  # tuning: run just some of the worker's parts ("ingress", ...)
    if only:
        runners = [r for r in runners if r.handler.name in only.split(",")]
    tune_gc(settings.gc_thresholds)  # as the worker does (run_worker)
    probe = await psycopg.AsyncConnection.connect(dsn, autocommit=True)  # progress, every 0.1 s
    cur = await probe.execute(_PROGRESS_SQL)
    first_position = int((await cur.fetchone() or (0,))[0])
    started, started_at = time.perf_counter(), time.time()
    cpu_started = time.process_time()
    pg_started, kafka_started = await backend_cpu(probe), kafka_cpu()
    pg_seconds = kafka_seconds = 0.0
    tasks = [asyncio.create_task(r.run()) for r in runners]
    if not only or "relay" in only:
        tasks.append(asyncio.create_task(relay.run()))
    target_versions, target_payments = int(args["target_versions"]), int(args["target_payments"])
    baseline_versions = int(args["baseline_versions"])
    tenth: float | None = None
    finished: float | None = None  # when everything was visible (in the read models, or stored)
    relays = not only or "relay" in only
    try:
        while True:
            # The probe's own connection: not one of the worker's pool, so no pool check. Two index
            # lookups while the backlog drains (the exact counts scan whole tables: ≈15 ms of
            # PostgreSQL CPU each time, which would be charged to the worker); the exact counts only
            # once the positions say every event may be stored (gaps in positions only make it sooner).
            cur = await probe.execute(_PROGRESS_SQL)
            row = await cur.fetchone()
            assert row is not None
            last, published = map(int, row)
            appended = last - first_position
            versions = payments = stored = 0
            if appended >= target_versions - baseline_versions:
                cur = await probe.execute(_EXACT_PROGRESS_SQL)
                exact = await cur.fetchone()
                assert exact is not None
                versions, payments, stored = map(int, exact)
            now = time.perf_counter()
            done_fraction = appended / max(1, target_versions - baseline_versions)
            if tenth is None and done_fraction >= 0.1:
                tenth = now
            if finished is None and versions >= target_versions and payments >= target_payments:
                finished = now
            if finished is None and only and "ledger-read-models" not in only and stored >= target_versions:
                # No projection from Kafka here: the event store is this process's end (with the read
                # models written inline, they are complete at the same moment).
                finished = now
            # When this process runs the relay, it also waits for the relay to have published every
            # event: a consumer of the ledger's topic (the read models of a split worker, the replay
            # phase) would otherwise wait for events nobody publishes. Its CPU counts too.
            if finished is not None and (not relays or published >= last):
                # Before the pool closes: the CPU of the backends that served this process (and the
                # others connected to this database), and of the Kafka broker (shared with everyone).
                pg_seconds = sum(
                    c - pg_started.get(pid, 0.0) for pid, c in (await backend_cpu(probe)).items()
                )
                kafka_seconds = kafka_cpu() - kafka_started
                break
            if now - started > args["timeout_s"]:
                raise TimeoutError(
                    f"only {versions}/{target_versions} versions, {payments}/{target_payments} payments,"
                    f" published {published}/{last}"
                )
            await asyncio.sleep(0.1)
    finally:
        await probe.close()
        for runner in runners:
            runner.stop()
        relay.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await pool.close()
    drained = time.perf_counter()
    assert finished is not None
    if os.environ.get("BENCH_TRACEMALLOC"):  # tuning: where the worker's Python memory is
        import tracemalloc

        for stat in tracemalloc.take_snapshot().statistics("filename")[:12]:
            print(stat, file=sys.stderr)
        print("tracemalloc peak MB", tracemalloc.get_traced_memory()[1] / 2**20, file=sys.stderr)
    events = target_versions - baseline_versions
    return {
        "cpu_seconds": time.process_time() - cpu_started,
        "events": events,
        "seconds": finished - started,
        "sustained_events": int(events * 0.9),
        "sustained_seconds": finished - (tenth or started),
        "peak_rss_mb": peak_rss_mb(),
        "started_at": started_at,
        "drained_seconds": drained - started,
        "pg_cpu_seconds": pg_seconds,
        "kafka_cpu_seconds": kafka_seconds,
    }


async def rebuild_phase(args: dict[str, Any]) -> dict[str, Any]:
    from ledger.adapters.rebuild import rebuild_from_store
    from ledger.settings import LedgerSettings

    tune_gc(LedgerSettings().gc_thresholds)  # as `python -m ledger.worker rebuild` does
    pool = await open_pool(args["dsn"], max_size=1, name="ledger-bench-rebuild")
    try:
        results = {}
        for name in ("ledger-periods", "ledger-payments"):
            stats = await rebuild_from_store(pool, name)
            results[name] = {"events": stats.events, "seconds": stats.seconds, "rows": stats.rows}
    finally:
        await pool.close()
    results["peak_rss_mb"] = peak_rss_mb()  # type: ignore[assignment]
    return results


async def baseline_phase(args: dict[str, Any]) -> dict[str, Any]:
    """Raw aiokafka consume of the payments topic + one multi-row INSERT per fetched batch."""
    dsn, n = args["dsn"], int(args["target_payments"])
    consumer = AIOKafkaConsumer(
        args["topics"]["payments"],
        bootstrap_servers=args["bootstrap"],
        group_id=f"ledger-bench-baseline-{args['group']}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
    )
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS bench_baseline (event_id UUID PRIMARY KEY, account_no TEXT, amount NUMERIC(14,2))"
    )
    started = time.perf_counter()
    await consumer.start()
    seen = 0
    tenth: float | None = None
    try:
        while seen < n:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            records = [r for batch in batches.values() for r in batch]
            if not records:
                continue
            messages = [orjson.loads(r.value) for r in records]
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO bench_baseline SELECT * FROM unnest(%s::uuid[], %s::text[], %s::numeric[])"
                    " ON CONFLICT DO NOTHING",
                    (
                        [m["event_id"] for m in messages],
                        [m["payload"]["account_no"] for m in messages],
                        [m["payload"]["amount"] for m in messages],
                    ),
                )
            seen += len(records)
            if tenth is None and seen >= n / 10:
                tenth = time.perf_counter()
    finally:
        await consumer.stop()
        await conn.close()
    finished = time.perf_counter()
    return {
        "events": n,
        "seconds": finished - started,
        "sustained_events": int(n * 0.9),
        "sustained_seconds": finished - (tenth or started),
        "peak_rss_mb": peak_rss_mb(),
    }


async def replay_phase(args: dict[str, Any]) -> dict[str, Any]:
    """The read models emptied and rebuilt by their consumer replaying ledger.events from the beginning
    (the runtime's kind of rebuild), in this process alone: what the projection costs by itself."""
    from ledger.adapters.projections import LedgerReadModels
    from ledger.settings import LedgerSettings

    topics = Topics(**args["topics"])
    dsn, bootstrap = args["dsn"], args["bootstrap"]
    settings = LedgerSettings(database_url=dsn, kafka_bootstrap_servers=bootstrap)
    registry = bench_registry(topics)
    pool = await open_pool(dsn, max_size=4, name="ledger-bench-replay")
    async with pool.connection() as conn:
        await conn.execute("TRUNCATE ledger_periods, ledger_period_streams, ledger_payments")
    runner = ConsumerRunner(
        LedgerReadModels(topics=(topics.ledger,)),
        pool,
        bootstrap,
        service="ledger-bench-replay",
        batch_size=settings.consumer_batch_size,
        event_registry=registry,
    )
    tune_gc(settings.gc_thresholds)
    started, cpu_started = time.perf_counter(), time.process_time()
    task = asyncio.create_task(runner.run())
    target = int(args["target_versions"])
    try:
        while True:
            async with pool.connection() as conn:
                cur = await conn.execute("SELECT coalesce(sum(version), 0) FROM ledger_period_streams")
                row = await cur.fetchone()
            if row is not None and int(row[0]) >= target:
                break
            if time.perf_counter() - started > args["timeout_s"]:
                raise TimeoutError(f"replay: {row[0] if row else 0}/{target} versions")
            await asyncio.sleep(0.05)
    finally:
        runner.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pool.close()
    return {
        "events": target,
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu_started,
        "peak_rss_mb": peak_rss_mb(),
    }


PHASES = {
    "worker": worker_phase,
    "rebuild": rebuild_phase,
    "baseline": baseline_phase,
    "replay": replay_phase,
}


# Inline read models: the inputs write them, the relay goes alone. Otherwise the relay goes with the
# read models' consumer (the inputs are the heavier half).
SPLIT_PARTS = {
    True: ["backoffice-ingress,upstream-ingress,account-links", "relay"],
    False: ["backoffice-ingress,upstream-ingress,account-links", "ledger-read-models,relay"],
}


def inline_read_models() -> bool:
    from ledger.settings import LedgerSettings

    return LedgerSettings().inline_read_models


async def run_split(args: dict[str, Any]) -> list[dict[str, Any]]:
    """The ingest phase with the worker split in two processes running at once."""
    parts = SPLIT_PARTS[inline_read_models()]
    procs = []
    for part in parts:
        env = {**os.environ, "LOG_LEVEL": "WARNING", "BENCH_ONLY": part}
        procs.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.benchmarks.bench_ledger",
                "--phase",
                "worker",
                json.dumps(args),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
        )
    results = []
    for proc in procs:
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"split worker failed:\n{err.decode()[-4000:]}")
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    return results


def run_phase(phase: str, args: dict[str, Any], *, tuning: bool = False) -> dict[str, Any]:
    """Run a phase in a fresh Python process (so its peak RSS is its own)."""
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    if not tuning:
        env.pop("BENCH_ONLY", None)
    done = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.bench_ledger", "--phase", phase, json.dumps(args)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    log = f"/tmp/bench_ledger_{phase}.log"
    with open(log, "a") as f:
        f.write(done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"phase {phase} failed (log: {log}):\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- the orchestration -----------------------------------------------------------------------------------


async def produce_all(bootstrap: str, topic: str, messages: Iterable[tuple[bytes, bytes]]) -> float:
    producer = idempotent_producer(bootstrap, client_id="ledger-bench-producer")
    await producer.start()
    started = time.perf_counter()
    try:
        futures = [await producer.send(topic, value=value, key=key) for key, value in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


def account_opened(account_no: str) -> tuple[bytes, bytes]:
    payload = acc.AccountOpened(
        account_no=account_no,
        payer_name="Иванов Иван Иванович",
        address="г. Алматы, ул. Абая, 1",
        residents=2,
        electric_stove=False,
        living_alone=False,
        tariff_option="flat",
        district_office_code="ROES-1",
        opened_on=date(2025, 1, 1),
        opening_balance=Decimal("1000.00"),
    )
    stream = acc.account_stream(account_no)
    envelope = Envelope(
        event_type="AccountOpened",
        schema_version=1,
        stream_id=stream,
        stream_version=1,
        producer="accounts",
        payload=payload.model_dump(mode="json"),
    )
    return stream.encode(), envelope.to_json_bytes()


DAYS = 300  # the payments' dates: from 2025-01-01, over this many days
LATE_SHARE = 0.03  # in date order, this share comes late: paid up to LATE_DAYS earlier
LATE_DAYS = 60


def paid_on_for(rng: random.Random, i: int, n: int, scattered: bool) -> date:
    """The i-th of n payments' date. In date order by default, as banks report the days' payments (a
    few late ones re-roll the months after them); `scattered`: any day, in any order (every payment is
    likely a late one for its account: the worst case of the period re-roll)."""
    if scattered:
        return date(2025, 1, 1) + timedelta(days=rng.randint(0, DAYS))
    day = i * DAYS // max(1, n)
    if rng.random() < LATE_SHARE:
        day = max(0, day - rng.randint(1, LATE_DAYS))
    return date(2025, 1, 1) + timedelta(days=day)


def payment_reported(account_no: str, i: int, paid_on: date, rng: random.Random) -> tuple[bytes, bytes]:
    message = {
        "event_id": str(uuid.uuid4()),
        "event_type": "PaymentReported",
        "schema_version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "producer": "backoffice",
        "payload": {
            "payment_id": f"BANK-{i:09d}",
            "account_no": account_no,
            "amount": f"{Decimal(rng.randint(100, 5_000_000)) / 100:.2f}",
            "paid_on": paid_on.isoformat(),
            "bank": rng.choice(["Halyk Bank", "Kaspi Bank", "Jusan Bank", "Forte Bank"]),
        },
    }
    return account_no.encode(), orjson.dumps(message)


async def create_topics(bootstrap: str, topics: Topics) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in topics.all()])
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, topics: Topics) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(topics.all())
    finally:
        await admin.close()


def rate(result: dict[str, Any], sustained: bool = False) -> float:
    if sustained:
        return float(result["sustained_events"] / result["sustained_seconds"])
    return float(result["events"] / result["seconds"])


async def orchestrate(n_accounts: int, n_payments: int, split: bool = False, scattered: bool = False) -> None:
    env = load_stack_env()
    for key, value in env.items():
        os.environ.setdefault(key, value)
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    admin_dsn = os.environ["PG_ADMIN_URL"]
    database = f"bench_ledger_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    dsn = urlunsplit(urlsplit(admin_dsn)._replace(path=f"/{database}"))
    topics = Topics.fresh()
    await create_topics(bootstrap, topics)
    try:
        from ledger.settings import MIGRATIONS_DIR
        from service_runtime.migrations import migrate_to_head

        await asyncio.to_thread(migrate_to_head, MIGRATIONS_DIR, dsn)
        rng = random.Random(5)
        accounts = [str(100_000_000_000 + i * 7919) for i in range(n_accounts)]
        common = {"dsn": dsn, "bootstrap": bootstrap, "topics": topics.__dict__, "timeout_s": 1800}

        order = (
            "scattered over 300 days in any order" if scattered else "in date order, 3 % late by ≤ 60 days"
        )
        print(
            f"ledger benchmark: {n_accounts:,} accounts, {n_payments:,} payments ({order}); database {database}",
            flush=True,
        )
        await produce_all(bootstrap, topics.accounts, [account_opened(a) for a in accounts])
        setup = run_phase(
            "worker",
            {**common, "group": "worker", "target_versions": n_accounts, "target_payments": 0,
             "baseline_versions": 0, "baseline_payments": 0},
        )  # fmt: skip
        print(
            f"  setup: {n_accounts:,} accounts opened through the worker in {setup['seconds']:.1f}s",
            flush=True,
        )

        payments = (
            payment_reported(rng.choice(accounts), i, paid_on_for(rng, i, n_payments, scattered), rng)
            for i in range(n_payments)
        )
        produced_in = await produce_all(bootstrap, topics.payments, payments)
        print(
            f"  {n_payments:,} PaymentReported produced in {produced_in:.1f}s (backlog for both runs)",
            flush=True,
        )

        baseline = run_phase("baseline", {**common, "group": "b", "target_payments": n_payments})
        ingest_args = {
            **common, "group": "worker", "target_versions": n_accounts + n_payments, "target_payments": n_payments,
            "baseline_versions": n_accounts, "baseline_payments": 0,
        }  # fmt: skip
        if split:
            with statement_costs(admin_dsn, database):
                parts = await run_split(ingest_args)
            ingest = {
                "events": n_payments,
                "seconds": max(p["seconds"] for p in parts),
                "sustained_events": int(n_payments * 0.9),
                "sustained_seconds": max(p["sustained_seconds"] for p in parts),
                "cpu_seconds": sum(p["cpu_seconds"] for p in parts),
                "peak_rss_mb": max(p["peak_rss_mb"] for p in parts),
                "started_at": min(p["started_at"] for p in parts),
                "drained_seconds": max(p["drained_seconds"] for p in parts),
                # Each part sees every backend of the database: the larger is the whole.
                "pg_cpu_seconds": max(p["pg_cpu_seconds"] for p in parts),
                "kafka_cpu_seconds": max(p["kafka_cpu_seconds"] for p in parts),
            }
            print(
                f"  (the worker as deployed, in two processes: {' | '.join(SPLIT_PARTS[inline_read_models()])})"
            )
        else:
            print("  (the worker in one process: inputs and relay)")
            with statement_costs(admin_dsn, database):
                ingest = run_phase("worker", ingest_args, tuning=True)
        with psycopg.connect(dsn) as conn:
            # Stage timings from the transactions' timestamps (now() is the transaction's start).
            stages = conn.execute(
                "SELECT extract(epoch FROM (SELECT max(recorded_at) FROM events WHERE event_type = 'PaymentReceived')),"
                " extract(epoch FROM (SELECT max(updated_at) FROM ledger_period_streams))"
            ).fetchone()
        rebuild = run_phase("rebuild", common)
        replay = run_phase("replay", {**common, "target_versions": n_accounts + n_payments})

        with psycopg.connect(dsn) as conn:
            stored = conn.execute("SELECT count(*) FROM events").fetchone()
            paid = conn.execute("SELECT sum(paid) FROM ledger_periods").fetchone()
        assert stored is not None and stored[0] == n_accounts + n_payments, stored
        assert paid is not None

        base_rate, base_sustained = rate(baseline), rate(baseline, sustained=True)
        print()
        print(f"  baseline  raw aiokafka consume + 1 INSERT/batch: {base_rate:>9,.0f} ev/s"
              f" (sustained {base_sustained:,.0f}), peak RSS {baseline['peak_rss_mb']:.0f} MB")  # fmt: skip
        ing, ing_sustained = rate(ingest), rate(ingest, sustained=True)
        print(f"  ingest    PaymentReported → balances visible:     {ing:>9,.0f} ev/s"
              f" (sustained {ing_sustained:,.0f}) = {ing / base_rate:.2f}× baseline"
              f" ({ing_sustained / base_sustained:.2f}× sustained); target ≥ 5,000")  # fmt: skip
        assert stages is not None
        ingress_s, projected_s = (float(t) - ingest["started_at"] for t in stages)
        print(f"            stages: the last payment appended to the store after {ingress_s:.1f}s"
              f" ({n_payments / ingress_s:,.0f} ev/s), the last balance written after {projected_s:.1f}s")  # fmt: skip
        print(f"            the worker stopped after {ingest['drained_seconds']:.1f}s (its relay had published every"
              f" event to Kafka)")  # fmt: skip
        print(f"            worker CPU {ingest['cpu_seconds']:.1f}s: {n_payments / ingest['cpu_seconds']:,.0f} events"
              f" per CPU-second of the worker process (PostgreSQL and Kafka use the other core)")  # fmt: skip
        worker_us = 1e6 * ingest["cpu_seconds"] / n_payments
        pg_us = 1e6 * ingest["pg_cpu_seconds"] / n_payments
        kafka_us = 1e6 * ingest["kafka_cpu_seconds"] / n_payments
        total_us = worker_us + pg_us + kafka_us
        print(f"            CPU per event: worker {worker_us:.0f} µs + PostgreSQL backends {pg_us:.0f} µs"
              f" + Kafka broker {kafka_us:.0f} µs (shared with other users: an upper bound) = {total_us:.0f} µs;"
              f" on 2 cores at most {2e6 / total_us:,.0f} events/s if nothing else ran")  # fmt: skip
        print(f"            worker peak RSS {ingest['peak_rss_mb']:.0f} MB (target < 200 MB)")
        for name in ("ledger-periods", "ledger-payments"):
            r = rebuild[name]
            ev = r["events"] / r["seconds"]
            print(f"  rebuild   {name:<16} from the event store:   {ev:>9,.0f} ev/s"
                  f" ({r['events']:,} events, {r['rows']:,} rows in {r['seconds']:.2f}s)"
                  f" = {ev / base_rate:.2f}× baseline; target ≥ 20,000")  # fmt: skip
        print(f"            rebuild peak RSS {rebuild['peak_rss_mb']:.0f} MB")
        print(f"  replay    read models rebuilt by their consumer from Kafka: {rate(replay):,.0f} ev/s"
              f" = {rate(replay) / base_rate:.2f}× baseline; {replay['events'] / replay['cpu_seconds']:,.0f}"
              f" events per CPU-second; peak RSS {replay['peak_rss_mb']:.0f} MB")  # fmt: skip
        print(f"  check: {stored[0]:,} events stored, sum(paid) = {paid[0]}")

    finally:
        await delete_topics(bootstrap, topics)
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))


@contextlib.contextmanager
def statement_costs(admin_dsn: str, database: str, top: int = 20) -> Iterator[None]:
    """Tuning aid (BENCH_PG_STATEMENTS=1): the statements the ingest phase spent PostgreSQL's time on,
    from pg_stat_statements (the local stack preloads it), written to /tmp/bench_ledger_statements.txt."""
    if not os.environ.get("BENCH_PG_STATEMENTS"):
        yield
        return
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("SELECT pg_stat_statements_reset()")
    yield
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT calls, total_exec_time, rows, regexp_replace(query, '\\s+', ' ', 'g')"
            " FROM pg_stat_statements JOIN pg_database AS d ON d.oid = dbid WHERE d.datname = %s"
            " ORDER BY total_exec_time DESC LIMIT %s",
            (database, top),
        ).fetchall()
    with open("/tmp/bench_ledger_statements.txt", "w") as out:
        out.write(f"{'calls':>7} {'total ms':>9} {'ms/call':>8} {'rows':>8}  statement\n")
        for calls, total_ms, n_rows, query in rows:
            out.write(f"{calls:>7} {total_ms:>9.0f} {total_ms / calls:>8.2f} {n_rows:>8}  {query[:160]}\n")


class Sampler:
    """A sampling profiler of the main thread: every `interval_s` it records the Python stack. Unlike
    cProfile it barely slows the code down and does not inflate Python-heavy code against C-heavy
    code, so its shares are those of the real run. Time spent in C is charged to the calling Python
    function ("self"); "total" counts every function on the stack."""

    def __init__(self, interval_s: float = 0.001) -> None:
        import threading

        self._interval = interval_s
        self._main = threading.main_thread().ident
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.samples = 0
        self.own: dict[str, int] = {}
        self.total: dict[str, int] = {}

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            frame = sys._current_frames().get(self._main)
            if frame is None:
                continue
            self.samples += 1
            seen: set[str] = set()
            leaf = True
            while frame is not None:
                code = frame.f_code
                name = f"{code.co_filename.replace('/work/main/', '')}:{code.co_firstlineno}({code.co_name})"
                if leaf:
                    if code.co_filename.startswith("<") and frame.f_back is not None:
                        caller = frame.f_back.f_code  # generated code (dataclass __init__): by caller
                        name += f" <- {caller.co_filename.replace('/work/main/', '')}:{caller.co_name}"
                    self.own[name] = self.own.get(name, 0) + 1
                    leaf = False
                if name not in seen:
                    seen.add(name)
                    self.total[name] = self.total.get(name, 0) + 1
                frame = frame.f_back

    def report(self, path: str, top: int = 80) -> None:
        n = max(1, self.samples)
        with open(path, "w") as out:
            out.write(f"{self.samples} samples\n\n-- self --\n")
            for name, count in sorted(self.own.items(), key=lambda kv: -kv[1])[:top]:
                out.write(f"{100 * count / n:6.2f}%  {name}\n")
            out.write("\n-- total --\n")
            for name, count in sorted(self.total.items(), key=lambda kv: -kv[1])[:top]:
                out.write(f"{100 * count / n:6.2f}%  {name}\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--payments", type=int, default=100_000)
    parser.add_argument(
        "--one-process",
        action="store_true",
        help="the worker's inputs and relay in one process (not as deployed)",
    )
    parser.add_argument(
        "--scattered", action="store_true", help="payments on any day in any order (the re-roll's worst case)"
    )
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("phase_args", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        if os.environ.get("BENCH_TRACEMALLOC"):
            import tracemalloc

            tracemalloc.start()
        if os.environ.get("BENCH_SAMPLE") == args.phase:  # a sampling profile (low overhead)
            with Sampler() as sampler:
                result = asyncio.run(PHASES[args.phase](json.loads(args.phase_args)))
            sampler.report(f"/tmp/bench_ledger_{args.phase}.samples.txt")
        elif os.environ.get("BENCH_PROFILE") == args.phase:  # a cProfile dump of the phase, for tuning
            import cProfile

            with cProfile.Profile() as profile:
                result = asyncio.run(PHASES[args.phase](json.loads(args.phase_args)))
            profile.dump_stats(f"/tmp/bench_ledger_{args.phase}.prof")
        else:
            result = asyncio.run(PHASES[args.phase](json.loads(args.phase_args)))
        print(json.dumps(result))
        return
    asyncio.run(orchestrate(args.accounts, args.payments, not args.one_process, args.scattered))


if __name__ == "__main__":
    main()
