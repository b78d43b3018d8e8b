"""Benchmarks of the event runtime (not part of the test run's pass/fail).

    uv run python -m tests.benchmarks.bench_runtime [--events N]

Prints the outbox relay's publish rate as a ratio to raw aiokafka produce, and a PostgreSQL-writing
projection's apply rate as a ratio to raw aiokafka consume, both measured in the same run on the same
machine (which is shared and noisy, so only ratios mean much). Targets (issue 2): relay ≥ 0.5 × raw
produce; projection ≥ 5,000 events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from decimal import Decimal
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from psycopg import sql

from contracts.registry import EventRegistry
from service_runtime.consumers import CanonicalEvent, ConsumerRunner
from service_runtime.db import Connection, open_pool
from service_runtime.eventstore import EventStore, NewEvent
from service_runtime.kafka import idempotent_producer
from service_runtime.relay import OutboxRelay
from service_runtime.schema import RUNTIME_SCHEMA_SQL
from tests.integration.runtime.conftest import TOTALS_SQL, AmountRecorded, TotalsProjection
from tests.support.stack import load_stack_env


class BatchedTotals(TotalsProjection):
    """The same read model, written one statement per batch (what a real projection should do)."""

    async def apply_batch(self, conn: Connection, events: Any) -> None:
        totals: dict[str, tuple[int, Decimal, int]] = {}
        for event in events:
            assert isinstance(event, CanonicalEvent)
            n, total, _ = totals.get(event.envelope.stream_id, (0, Decimal(0), 0))
            totals[event.envelope.stream_id] = (
                n + 1,
                total + event.payload.amount,
                event.envelope.stream_version,
            )
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO totals (stream_id, events, total, last_version) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (stream_id) DO UPDATE SET events = totals.events + excluded.events,"
                " total = totals.total + excluded.total, last_version = excluded.last_version",
                [(s, n, t, v) for s, (n, t, v) in totals.items()],
            )


def sample_payload_bytes(size_hint: int = 400) -> bytes:
    return b'{"event_id":"' + str(uuid.uuid4()).encode() + b'","payload":"' + b"x" * size_hint + b'"}'


async def raw_produce(bootstrap: str, topic: str, n: int) -> float:
    producer = idempotent_producer(bootstrap, client_id="bench-raw")
    await producer.start()
    value = sample_payload_bytes()
    try:
        started = time.perf_counter()
        futures = [await producer.send(topic, value=value, key=f"acct-{i % 500}".encode()) for i in range(n)]
        await asyncio.gather(*futures)
        return n / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def raw_consume(bootstrap: str, topic: str, n: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        seen = 0
        started = time.perf_counter()
        while seen < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=500)
            seen += sum(len(r) for r in batch.values())
        return n / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def main(events: int) -> None:
    env = load_stack_env()
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    suffix = uuid.uuid4().hex[:8]
    raw_topic, relay_topic = f"bench.raw.{suffix}", f"bench.relay.{suffix}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(t, 6, 1) for t in (raw_topic, relay_topic, f"{relay_topic}.dlq")])

    db = f"bench_{suffix}"
    admin_dsn = env["PG_ADMIN_URL"]
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    dsn = admin_dsn.rsplit("/", 1)[0] + f"/{db}"
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(RUNTIME_SCHEMA_SQL)
            conn.execute(TOTALS_SQL)
        registry = EventRegistry()
        registry.register("AmountRecorded", version=1, topic=relay_topic)(AmountRecorded)
        pool = await open_pool(dsn, max_size=4)
        store = EventStore("bench", registry)
        async with pool.connection() as conn:
            per_stream = 10
            for s in range(events // per_stream):
                await store.append(
                    conn,
                    f"acct-{s}",
                    0,
                    [NewEvent(AmountRecorded(amount=Decimal("12.34"))) for _ in range(per_stream)],
                )

        raw_produce_rate = await raw_produce(bootstrap, raw_topic, events)

        relay = OutboxRelay(pool, dsn, bootstrap, service="bench", batch_size=2000)
        started = time.perf_counter()
        published = 0
        while published < events:
            published += await relay.publish_available()
        relay_rate = published / (time.perf_counter() - started)
        await relay.close()

        raw_consume_rate = await raw_consume(bootstrap, raw_topic, events)

        results = {}
        for label, projection in (
            ("per-event upserts", TotalsProjection(relay_topic)),
            ("batched upserts", BatchedTotals(relay_topic)),
        ):
            async with pool.connection() as conn:
                await conn.execute("TRUNCATE totals")
            runner = ConsumerRunner(
                projection,
                pool,
                bootstrap,
                service=f"bench-{uuid.uuid4().hex[:6]}",
                batch_size=1000,
                event_registry=registry,
            )
            await runner._start_clients()
            try:
                started = time.perf_counter()
                while runner.applied < events:
                    await runner.poll_once(timeout_ms=1000)
                results[label] = runner.applied / (time.perf_counter() - started)
            finally:
                await runner._stop_clients()
            async with pool.connection() as conn:
                cur = await conn.execute("SELECT sum(events) FROM totals")
                row = await cur.fetchone()
                assert row is not None and int(row[0]) == events, (
                    "the projection must have applied every event once"
                )
        await pool.close()

        print(f"events: {events}")
        print(f"raw aiokafka produce      {raw_produce_rate:>10,.0f} msg/s")
        print(
            f"outbox relay              {relay_rate:>10,.0f} ev/s   ratio {relay_rate / raw_produce_rate:.2f} (target ≥ 0.50)"
        )
        print(f"raw aiokafka consume      {raw_consume_rate:>10,.0f} msg/s")
        for label, rate in results.items():
            print(
                f"projection, {label:<17}{rate:>8,.0f} ev/s   ratio {rate / raw_consume_rate:.2f} to raw consume"
                f" (target ≥ 5,000 ev/s)"
            )
    finally:
        await admin.delete_topics([raw_topic, relay_topic, f"{relay_topic}.dlq"])
        await admin.close()
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=50_000)
    asyncio.run(main(parser.parse_args().events))
