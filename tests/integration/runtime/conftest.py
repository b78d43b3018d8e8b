"""A miniature service for testing the event runtime: one event type, one projection, real infrastructure."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from contracts.money import Money
from contracts.registry import EventPayload, EventRegistry
from service_runtime.consumers import CanonicalEvent, ConsumerRunner, Projection
from service_runtime.db import Connection, open_pool
from service_runtime.eventstore import EventStore
from service_runtime.relay import OutboxRelay
from service_runtime.schema import RUNTIME_SCHEMA_SQL


class AmountRecorded(EventPayload):
    amount: Money


TOTALS_SQL = """
CREATE TABLE totals (
    stream_id TEXT PRIMARY KEY,
    events    INTEGER NOT NULL,
    total     NUMERIC(16, 2) NOT NULL,
    last_version INTEGER NOT NULL
)
"""


class TotalsProjection(Projection):
    """Per stream: how many events and their sum. Not idempotent by itself: the runner must make it so."""

    name: ClassVar[str] = "totals"
    topics: ClassVar[tuple[str, ...]] = ()
    handles: ClassVar[frozenset[str]] = frozenset({"AmountRecorded"})

    def __init__(self, topic: str) -> None:
        self.topics = (topic,)  # type: ignore[misc]

    async def apply(self, conn: Connection, event: CanonicalEvent) -> None:
        await conn.execute(
            "INSERT INTO totals (stream_id, events, total, last_version) VALUES (%s, 1, %s, %s)"
            " ON CONFLICT (stream_id) DO UPDATE SET events = totals.events + 1,"
            " total = totals.total + excluded.total, last_version = excluded.last_version",
            (event.envelope.stream_id, event.payload.amount, event.envelope.stream_version),
        )

    async def reset(self, conn: Connection) -> None:
        await conn.execute("TRUNCATE totals")


@dataclass
class MiniService:
    dsn: str
    bootstrap: str
    topic: str
    registry: EventRegistry
    pool: AsyncConnectionPool[Connection]
    store: EventStore

    def relay(self, cls: type[OutboxRelay] = OutboxRelay, **kwargs: Any) -> OutboxRelay:
        return cls(self.pool, self.dsn, self.bootstrap, service="mini", idle_wait_s=0.1, **kwargs)

    def runner(self, projection: Projection | None = None, batch_size: int = 200) -> ConsumerRunner:
        return ConsumerRunner(
            projection or TotalsProjection(self.topic),
            self.pool,
            self.bootstrap,
            service=f"mini-{self.topic}",
            batch_size=batch_size,
            event_registry=self.registry,
        )

    async def read_model(self) -> dict[str, tuple[int, Decimal, int]]:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT stream_id, events, total, last_version FROM totals")
            return {s: (int(n), Decimal(t), int(v)) for s, n, t, v in await cur.fetchall()}

    async def expected_from_events(self) -> dict[str, tuple[int, Decimal, int]]:
        """What the read model must equal: computed straight from the event store."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT stream_id, count(*), sum((payload->>'amount')::numeric), max(stream_version)"
                " FROM events GROUP BY stream_id"
            )
            return {s: (int(n), Decimal(t), int(v)) for s, n, t, v in await cur.fetchall()}


@pytest.fixture
async def mini(make_database: Any, kafka_bootstrap: str, make_topics: Any) -> AsyncIterator[MiniService]:
    dsn = make_database()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(RUNTIME_SCHEMA_SQL)
        conn.execute(TOTALS_SQL)
    topic = f"test.mini.{uuid.uuid4().hex[:10]}"
    await make_topics(topic, f"{topic}.dlq", partitions=3)
    registry = EventRegistry()
    registry.register("AmountRecorded", version=1, topic=topic)(AmountRecorded)
    pool = await open_pool(dsn, max_size=8)
    try:
        yield MiniService(dsn, kafka_bootstrap, topic, registry, pool, EventStore("mini", registry))
    finally:
        await pool.close()
