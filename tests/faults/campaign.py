"""The fault-injection campaign: back-office traffic with chaos, crashes and outages, then an audit.

What it does, on an isolated stack (tests/faults/instance.py):
1. Two copies of the same households (the simulator's `generate`, one seed, two account prefixes): the
   *twin* is published cleanly, the *chaotic* copy with duplicates, disorder and malformed messages
   (`chaos`), then the chaotic copy's live feed (`stream`: today's readings and payments) with chaos too.
   A publisher that survives Kafka outages re-sends from the first unacknowledged message (duplicates
   are the services' to drop; the order per key is kept).
2. Meanwhile, at seeded random moments (printed): `kill -9` of every service's worker, Kafka stopped and
   started again, PostgreSQL stopped (fast or immediate, like a crash) and started again, Redis flushed.
3. When every relay and consumer has caught up, the audit (`audit.py`) compares the services' stores and
   the public API with the simulator's own record of what it sent, and prints the counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from redis.asyncio import Redis

from backoffice_simulator.chaos import Chaos, ChaosConfig
from backoffice_simulator.generator import Scenario, World, generate
from backoffice_simulator.kafka import ensure_topics
from backoffice_simulator.ledger import SimLedger
from backoffice_simulator.stream import LiveFeed
from backoffice_simulator.wire import OutMessage
from tests.faults.instance import SERVICES, Instance


@dataclass(frozen=True)
class Size:
    name: str
    accounts: int
    months: int
    history_rate: float  # messages per second while the history is published
    live_messages: int  # live-feed messages (before chaos)
    live_rate: float
    kills_per_worker: int
    kafka_restarts: int
    postgres_restarts: int
    redis_flushes: int
    converge_timeout_s: float
    api_sample: int  # accounts per copy checked through the public API as well


SMALL = Size("small", accounts=10, months=5, history_rate=60, live_messages=120, live_rate=6,
             kills_per_worker=1, kafka_restarts=1, postgres_restarts=1, redis_flushes=1,
             converge_timeout_s=360, api_sample=2)  # fmt: skip
FULL = Size("full", accounts=320, months=24, history_rate=350, live_messages=4000, live_rate=40,
            kills_per_worker=3, kafka_restarts=3, postgres_restarts=3, redis_flushes=3,
            converge_timeout_s=3600, api_sample=8)  # fmt: skip
SIZES = {s.name: s for s in (SMALL, FULL)}


def say(line: str) -> None:
    print(f"[faults {time.strftime('%H:%M:%S')}] {line}", flush=True)


# --- publishing that survives Kafka outages -----------------------------------------------------------
@dataclass
class PublishStats:
    sent: int = 0
    resent: int = 0
    failures: int = 0
    per_kind: Counter[str] = field(default_factory=Counter)


class Publisher:
    """Sends messages in order, waiting out broker outages; a failed chunk is re-sent from its start."""

    def __init__(self, bootstrap: str, chunk: int = 100) -> None:
        self.bootstrap = bootstrap
        self.chunk = chunk
        self.stats = PublishStats()
        self._producer: AIOKafkaProducer | None = None

    async def _get(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap,
                client_id="faults-publisher",
                enable_idempotence=True,
                acks="all",
                linger_ms=5,
                request_timeout_ms=10000,
            )
            try:
                await asyncio.wait_for(producer.start(), 20)
            except BaseException:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 20)

    async def send(self, messages: list[OutMessage]) -> None:
        for start in range(0, len(messages), self.chunk):
            chunk = messages[start : start + self.chunk]
            attempt = 0
            while True:
                try:
                    await asyncio.wait_for(self._send_chunk(chunk), 60)
                    break
                except Exception as exc:  # the broker is down or restarting: wait, then re-send the chunk
                    attempt += 1
                    self.stats.failures += 1
                    if attempt == 1:
                        say(f"publisher: send failed ({type(exc).__name__}); re-sending once Kafka is back")
                    await self.close()
                    await asyncio.sleep(min(1.0 * attempt, 5.0))
            if attempt:
                self.stats.resent += len(chunk)
            self.stats.sent += len(chunk)
            self.stats.per_kind.update(m.kind.split(":")[0] for m in chunk)

    async def _send_chunk(self, chunk: list[OutMessage]) -> None:
        producer = await self._get()
        futures = [await producer.send(m.topic, value=m.value, key=m.key.encode()) for m in chunk]
        await asyncio.gather(*futures)


async def paced(publisher: Publisher, messages: list[OutMessage], rate: float) -> None:
    """Publish at about `rate` messages per second (bursts of one tick's worth)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    done = 0
    while done < len(messages):
        due = min(len(messages), max(done + 1, int((loop.time() - started) * rate)))
        await publisher.send(messages[done:due])
        done = due
        await asyncio.sleep(0.25)


# --- faults ---------------------------------------------------------------------------------------------
@dataclass
class Fault:
    at_s: float
    kind: str  # kill-worker | kafka-restart | postgres-restart | redis-flush
    target: str = ""
    detail: str = ""
    took_s: float = 0.0


def plan_faults(size: Size, rng: random.Random, window_s: float) -> list[Fault]:
    faults = [Fault(0, "kill-worker", s) for s in SERVICES for _ in range(size.kills_per_worker)]
    faults += [Fault(0, "kafka-restart", "kafka") for _ in range(size.kafka_restarts)]
    faults += [Fault(0, "postgres-restart", "postgres") for _ in range(size.postgres_restarts)]
    faults += [Fault(0, "redis-flush", "redis") for _ in range(size.redis_flushes)]
    for f in faults:
        f.at_s = round(rng.uniform(0.05 * window_s, window_s), 1)
    return sorted(faults, key=lambda f: f.at_s)


async def inject(instance: Instance, faults: list[Fault], rng: random.Random, started: float) -> None:
    env = instance.env()
    for fault in faults:
        wait = started + fault.at_s - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        t0 = time.monotonic()
        if fault.kind == "kill-worker":
            # A worker that is (re)starting has no Python process yet: wait for it, so every kill lands.
            for _ in range(60):
                if instance.worker_pids(fault.target):
                    break
                await asyncio.sleep(0.5)
            pids = instance.kill_worker(fault.target)
            fault.detail = f"SIGKILL pid {pids}" if pids else "no worker process (already restarting)"
        elif fault.kind == "kafka-restart":
            down = round(rng.uniform(2, 8), 1)
            await asyncio.to_thread(instance.stack, "stop-kafka")
            await asyncio.sleep(down)
            await asyncio.to_thread(instance.stack, "start-kafka")
            fault.detail = f"down {down}s after the stop"
        elif fault.kind == "postgres-restart":
            mode = rng.choice(["fast", "immediate"])
            down = round(rng.uniform(1, 5), 1)
            await asyncio.to_thread(instance.stack, "stop-postgres", extra_env={"STACK_PG_STOP_MODE": mode})
            await asyncio.sleep(down)
            await asyncio.to_thread(instance.stack, "start-postgres")
            fault.detail = f"stop -m {mode}, down {down}s"
        elif fault.kind == "redis-flush":
            redis = Redis.from_url(env["REDIS_URL"])
            try:
                keys = await redis.dbsize()
                await redis.flushall()
            finally:
                await redis.aclose()
            fault.detail = f"FLUSHALL ({keys} keys)"
        fault.took_s = round(time.monotonic() - t0, 1)
        say(f"fault at +{fault.at_s:>6.1f}s: {fault.kind} {fault.target}: {fault.detail} ({fault.took_s}s)")


# --- a prober of the public API during the faults (informational) ---------------------------------------
async def probe(gateway: str, stop: asyncio.Event, seen: Counter[str]) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        while not stop.is_set():
            for path in ("/api/v1/tariffs", "/api/v1/district-offices"):
                try:
                    r = await http.get(gateway + path)
                    seen[str(r.status_code)] += 1
                except httpx.HTTPError as exc:
                    seen[type(exc).__name__] += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


# --- convergence ----------------------------------------------------------------------------------------
def db_url(admin: str, database: str) -> str:
    return admin.rsplit("/", 1)[0] + "/" + database


async def end_offsets(bootstrap: str) -> dict[tuple[str, int], int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        topics = [t for t in await consumer.topics() if not t.startswith("__")]
        await consumer._client.force_metadata_update()
        cluster = consumer._client.cluster
        tps = [TopicPartition(t, p) for t in topics for p in (cluster.partitions_for_topic(t) or ())]
        ends = await consumer.end_offsets(tps)
        return {(tp.topic, tp.partition): off for tp, off in ends.items()}
    finally:
        await consumer.stop()


async def lag_report(env: dict[str, str]) -> list[str]:
    """What has not caught up yet: relays behind their event store, consumers behind their topics, and
    work the services keep in tables (parked messages, readings without a charge, open billing runs)."""
    behind: list[str] = []
    ends = await end_offsets(env["KAFKA_BOOTSTRAP_SERVERS"])
    for service in SERVICES:
        async with await psycopg.AsyncConnection.connect(db_url(env["PG_ADMIN_URL"], service)) as conn:
            row = await (
                await conn.execute(
                    "SELECT (SELECT coalesce(max(position), 0) FROM events),"
                    " (SELECT coalesce(max(position), 0) FROM outbox_relay_state)"
                )
            ).fetchone()
            assert row is not None
            if row[0] != row[1]:
                behind.append(f"{service} relay at {row[1]} of {row[0]}")
            rows = await (
                await conn.execute("SELECT consumer, topic, partition, next_offset FROM consumer_offsets")
            ).fetchall()
            seen_topics: dict[str, set[str]] = {}
            stored = {(c, t, p): o for c, t, p, o in rows}
            for consumer, topic, _, _ in rows:
                seen_topics.setdefault(consumer, set()).add(topic)
            for consumer, topics in seen_topics.items():
                for topic in topics:
                    for (t, p), end in ends.items():
                        if t == topic and end > 0 and stored.get((consumer, t, p), 0) < end:
                            behind.append(
                                f"{consumer} {t}[{p}] at {stored.get((consumer, t, p), 0)} of {end}"
                            )
            for sql, what in _PENDING_SQL.get(service, ()):
                count = (await (await conn.execute(sql)).fetchone() or (0,))[0]
                if count:
                    behind.append(f"{service}: {count} {what}")
    return behind


_PENDING_SQL: dict[str, tuple[tuple[str, str], ...]] = {
    "ledger": (("SELECT count(*) FROM ledger_parked", "parked messages"),),
    "accounts": (("SELECT count(*) FROM parked_messages", "parked messages"),),
    "calculator": (
        ("SELECT count(*) FROM parked_grid_readings WHERE resolved_at IS NULL", "parked grid readings"),
        (
            "SELECT count(*) FROM readings r WHERE NOT EXISTS"
            " (SELECT 1 FROM charges c WHERE c.reading_id = r.reading_id AND NOT c.estimated)"
            " AND NOT EXISTS (SELECT 1 FROM rating_failures f WHERE f.reading_id = r.reading_id)",
            "readings not rated yet",
        ),
        ("SELECT count(*) FROM billing_runs WHERE completed_at IS NULL", "billing runs not completed"),
    ),
}


async def wait_converged(instance: Instance, timeout_s: float) -> float:
    """Until nothing is behind, twice in a row 3 s apart. Returns the seconds it took."""
    env = instance.env()
    started = time.monotonic()
    quiet = 0
    last_report = 0.0
    last: list[str] = []
    while True:
        try:
            last = await lag_report(env)
        except Exception as exc:  # something is still restarting
            last = [f"lag report failed: {exc!r}"]
        quiet = quiet + 1 if not last else 0
        if quiet >= 2:
            return time.monotonic() - started
        elapsed = time.monotonic() - started
        if elapsed > timeout_s:
            raise AssertionError(f"not converged after {timeout_s:.0f}s: " + "; ".join(last[:30]))
        if elapsed - last_report > 30:
            last_report = elapsed
            say(f"converging ({elapsed:.0f}s): {len(last)} behind: " + "; ".join(last[:6]))
        await asyncio.sleep(3)


# --- the campaign ---------------------------------------------------------------------------------------
@dataclass
class Campaign:
    size: Size
    seed: int
    instance: Instance
    faults: list[Fault] = field(default_factory=list)
    twin: World | None = None
    chaotic: World | None = None
    sent: list[OutMessage] = field(default_factory=list)  # everything enqueued, in order (first sends)
    twin_ledger: SimLedger = field(default_factory=SimLedger)
    chaos_ledger: SimLedger = field(default_factory=SimLedger)
    chaos_report: dict[str, Any] = field(default_factory=dict)
    publish: PublishStats | None = None
    probes: Counter[str] = field(default_factory=Counter)
    timings: dict[str, float] = field(default_factory=dict)
    live_payments: int = 0
    live_readings: int = 0

    def prefixes(self) -> tuple[str, str]:
        rng = random.Random(f"faults-prefix:{self.seed}")
        base = rng.randrange(100, 999)
        return f"6{base}1", f"6{base}2"  # twin, chaotic

    def build_history(self) -> tuple[list[OutMessage], list[OutMessage], Chaos]:
        twin_prefix, chaos_prefix = self.prefixes()

        def scenario(prefix: str) -> Scenario:
            return Scenario(seed=self.seed, accounts=self.size.accounts, months=self.size.months,
                            account_prefix=prefix)  # fmt: skip

        self.twin = generate(scenario(twin_prefix))
        self.chaotic = generate(scenario(chaos_prefix))
        chaos = Chaos(ChaosConfig(duplicates=0.2, disorder=0.3, malformed=0.05, window=40, seed=self.seed))
        chaotic_messages = chaos.apply(self.chaotic.messages)
        return self.twin.messages, chaotic_messages, chaos

    async def run(self) -> None:
        env = self.instance.env()
        bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
        rng = random.Random(f"faults:{self.seed}")
        twin_messages, chaotic_messages, chaos = self.build_history()
        # Interleave the two copies (both orders are kept), so both go through the same faults.
        history = _interleave(twin_messages, chaotic_messages)
        assert self.chaotic is not None
        feed = LiveFeed(self.chaotic, run_id=f"faults{self.seed}")
        live_chaos = Chaos(ChaosConfig(duplicates=0.2, disorder=0.3, malformed=0.05, window=10,
                                       seed=self.seed + 1))  # fmt: skip
        live: list[OutMessage] = []
        for _ in range(0, self.size.live_messages, 10):
            batch = [feed.next() for _ in range(10)]
            self.live_readings += sum(1 for m in batch if m.event_type == "GridReadingTaken")
            self.live_payments += sum(1 for m in batch if m.event_type == "PaymentReported")
            live += live_chaos.apply(batch)
        chaos.report.merge(live_chaos.report)
        self.chaos_report = chaos.report.to_json()
        self.sent = history + live
        self.twin_ledger.record_all(twin_messages)
        self.chaos_ledger.record_all(chaotic_messages + live)

        history_s = len(history) / self.size.history_rate
        live_s = len(live) / self.size.live_rate
        window_s = history_s + live_s
        self.faults = plan_faults(self.size, rng, window_s)
        say(
            f"{self.size.name}: {len(history)} history + {len(live)} live messages over ~{window_s:.0f}s;"
            f" {len(self.faults)} faults planned (seed {self.seed}):"
        )
        for f in self.faults:
            say(f"  +{f.at_s:>6.1f}s {f.kind} {f.target}")

        await ensure_topics(bootstrap)
        publisher = Publisher(bootstrap)
        stop_probe = asyncio.Event()
        prober = asyncio.create_task(probe(self.instance.gateway_url, stop_probe, self.probes))
        started = time.monotonic()
        injector = asyncio.create_task(inject(self.instance, self.faults, rng, started))
        try:
            await paced(publisher, history, self.size.history_rate)
            say(f"history published ({publisher.stats.sent} messages); the live feed starts")
            await paced(publisher, live, self.size.live_rate)
            say(f"live feed published ({publisher.stats.sent} messages in all)")
            await injector
        finally:
            injector.cancel()
            with contextlib.suppress(BaseException):
                await injector
            await publisher.close()
            stop_probe.set()
            await prober
        self.publish = publisher.stats
        self.timings["traffic_and_faults_s"] = round(time.monotonic() - started, 1)
        say("traffic and faults done; waiting for every relay and consumer to catch up")
        self.timings["convergence_s"] = round(
            await wait_converged(self.instance, self.size.converge_timeout_s), 1
        )
        say(f"converged in {self.timings['convergence_s']}s")


def _interleave(a: list[OutMessage], b: list[OutMessage]) -> list[OutMessage]:
    out: list[OutMessage] = []
    ia = ib = 0
    while ia < len(a) or ib < len(b):
        # proportional: both copies progress through their history at the same pace
        if ib >= len(b) or (ia < len(a) and ia / max(len(a), 1) <= ib / max(len(b), 1)):
            out.append(a[ia])
            ia += 1
        else:
            out.append(b[ib])
            ib += 1
    return out


def dumps_report(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2, default=str)
