"""The outbox relay: publishes appended events to Kafka in commit order, keyed by stream id.

Progress (the last published position) is recorded only after Kafka acknowledged the batch.
A relay killed in between publishes that batch again on restart: consumers de-duplicate by stream
version, so delivery is at-least-once and the effect exactly-once. While Kafka is down the relay waits,
retrying with backoff, and the events wait in PostgreSQL: nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiokafka import AIOKafkaProducer
from prometheus_client import Counter
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from service_runtime.db import Connection
from service_runtime.kafka import idempotent_producer

log = logging.getLogger(__name__)

RELAY_PUBLISHED = Counter("outbox_relay_published_total", "Events the outbox relay published", ["service"])
RELAY_LOCK_CLASS = 7203  # advisory lock namespace of relay leadership

RELAY_FAILURES = Counter("outbox_relay_failures_total", "Failed publish attempts", ["service"])

# Positions are assigned and committed in one order (EventStore.append serializes appends), so
# reading past the last published position can never skip a row that commits later.
_NEXT_BATCH_SQL = """
SELECT tx_id::text, position, topic, stream_id,
       json_build_object(
           'event_id', event_id, 'event_type', event_type, 'schema_version', schema_version,
           'stream_id', stream_id, 'stream_version', stream_version, 'occurred_at', occurred_at,
           'correlation_id', correlation_id, 'causation_id', causation_id, 'producer', producer,
           'payload', payload
       )::text
FROM events
WHERE position > %s
ORDER BY position
LIMIT %s
"""


class OutboxRelay:
    def __init__(
        self,
        pool: AsyncConnectionPool[Connection],
        dsn: str,
        bootstrap_servers: str,
        *,
        service: str,
        batch_size: int = 1000,
        relay_name: str = "outbox",
        idle_wait_s: float = 0.5,
    ) -> None:
        self._pool = pool
        self._dsn = dsn
        self._bootstrap = bootstrap_servers
        self._service = service
        self._batch_size = batch_size
        self._relay_name = relay_name
        self._idle_wait_s = idle_wait_s
        self._producer: AIOKafkaProducer | None = None
        self._wakeup = asyncio.Event()
        self._stopping = False

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen_for_appends())
        backoff = 0.2
        try:
            while not self._stopping:
                try:
                    published = await self.publish_available()
                    backoff = 0.2
                except Exception as exc:  # Kafka or PostgreSQL unavailable: wait, keep the events, retry.
                    RELAY_FAILURES.labels(self._service).inc()
                    log.warning("outbox relay: publish failed, retrying", extra={"error": repr(exc)})
                    await self._drop_producer()
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                if published == 0:
                    self._wakeup.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), self._idle_wait_s)
        finally:
            listener.cancel()
            await self._drop_producer()

    def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()

    async def close(self) -> None:
        """Release the Kafka producer (for callers that used `publish_once` directly)."""
        await self._drop_producer()

    async def publish_once(self) -> int:
        """Publish one batch; returns how many events were published."""
        async with self._pool.connection() as conn, conn.transaction():
            if not await self._lead(conn):
                return 0
            rows = await self._fetch(conn, await self._load_position(conn))
            if rows:
                await asyncio.gather(*await self._send(rows))
                await self._record_position(conn, str(rows[-1][0]), int(rows[-1][1]))
        RELAY_PUBLISHED.labels(self._service).inc(len(rows))
        return len(rows)

    async def publish_available(self) -> int:
        """Publish every batch there is, reading the next batch while Kafka acknowledges the current one."""
        total = 0
        async with self._pool.connection() as conn, conn.transaction():
            if not await self._lead(conn):
                return 0
            rows = await self._fetch(conn, await self._load_position(conn))
            while rows and not self._stopping:
                acks = await self._send(rows)
                last = (str(rows[-1][0]), int(rows[-1][1]))
                next_rows = await self._fetch(conn, last)
                await asyncio.gather(*acks)
                await self._record_position(conn, *last)
                RELAY_PUBLISHED.labels(self._service).inc(len(rows))
                total += len(rows)
                rows = next_rows
        return total

    async def _lead(self, conn: Connection) -> bool:
        """One publishing relay per database: other worker replicas stand by instead of duplicating."""
        cur = await conn.execute(
            "SELECT pg_try_advisory_xact_lock(%s, hashtext(%s))", (RELAY_LOCK_CLASS, self._relay_name)
        )
        row = await cur.fetchone()
        return bool(row and row[0])

    async def _fetch(self, conn: Connection, after: tuple[str, int]) -> list[tuple[Any, ...]]:
        cur = await conn.execute(_NEXT_BATCH_SQL, (after[1], self._batch_size))
        return await cur.fetchall()

    async def _send(self, rows: list[tuple[Any, ...]]) -> list[asyncio.Future[Any]]:
        """Hand a batch to the producer; returns the acknowledgements to await (in order, per partition)."""
        producer = await self._get_producer()
        # PostgreSQL rendered the envelope: the payload goes out exactly as it was stored.
        return [await producer.send(row[2], value=row[4].encode(), key=row[3].encode()) for row in rows]

    async def _record_position(self, conn: Connection, tx_id: str, position: int) -> None:
        await conn.execute(
            "INSERT INTO outbox_relay_state (relay, tx_id, position, updated_at)"
            " VALUES (%s, %s::xid8, %s, now())"
            " ON CONFLICT (relay) DO UPDATE SET tx_id = excluded.tx_id, position = excluded.position,"
            " updated_at = now()",
            (self._relay_name, tx_id, position),
        )

    async def _load_position(self, conn: Connection) -> tuple[str, int]:
        cur = await conn.execute(
            "SELECT tx_id::text, position FROM outbox_relay_state WHERE relay = %s", (self._relay_name,)
        )
        row = await cur.fetchone()
        return (str(row[0]), int(row[1])) if row else ("0", 0)

    async def _get_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = idempotent_producer(self._bootstrap, client_id=f"{self._service}-relay")
            try:
                await producer.start()
            except Exception:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await producer.stop()
            except Exception:
                log.debug("producer stop failed", exc_info=True)

    async def _listen_for_appends(self) -> None:
        """LISTEN for appends so that a new event is published at once instead of at the next poll."""
        while not self._stopping:
            try:
                # A connection of its own: a LISTENing connection must not go back to the pool.
                conn = await AsyncConnection.connect(self._dsn, autocommit=True)
                async with conn:
                    await conn.execute("LISTEN events_appended")
                    async for _ in conn.notifies():
                        self._wakeup.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(1.0)
