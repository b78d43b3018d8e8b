"""The PostgreSQL event store: append with optimistic concurrency per stream, read a stream.

The `events` table is also the outbox: `relay.OutboxRelay` publishes what is appended here.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from psycopg import errors
from pydantic import BaseModel

from contracts.envelope import Envelope, utc_now
from contracts.registry import EventRegistry, registry
from service_runtime.correlation import current_causation_id, current_correlation_id
from service_runtime.db import Connection


class ConcurrencyError(Exception):
    """The stream moved on since the caller read it: re-read and decide again."""

    def __init__(self, stream_id: str, expected: int, actual: int | None = None) -> None:
        super().__init__(f"stream {stream_id!r}: expected version {expected}, found {actual}")
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append: its payload model, and optionally a fixed id (to make a retried append idempotent)."""

    payload: BaseModel
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)
    occurred_at: datetime | None = None


APPEND_LOCK_KEY = 7_202_511  # the advisory lock that orders appends (any constant unique in the database)

_COLUMNS = (
    "event_id, event_type, schema_version, stream_id, stream_version, occurred_at, "
    "correlation_id, causation_id, producer, payload, topic"
)


def row_to_envelope(row: Sequence[Any]) -> Envelope:
    """An envelope from the first ten columns of an `events` row, in `_COLUMNS` order."""
    return Envelope(
        event_id=row[0],
        event_type=row[1],
        schema_version=row[2],
        stream_id=row[3],
        stream_version=row[4],
        occurred_at=row[5],
        correlation_id=row[6],
        causation_id=row[7],
        producer=row[8],
        payload=row[9],
    )


async def lock_for_append(conn: Connection) -> None:
    """Take the append lock for the rest of the caller's transaction.

    Every writer of the `events` table must take it (EventStore.append does): the relay relies on
    positions committing in order. Bulk writers that insert into `events` themselves call this first.
    """
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK_KEY,))


class EventStore:
    def __init__(self, producer: str, event_registry: EventRegistry = registry) -> None:
        self._producer = producer
        self._registry = event_registry

    @property
    def producer(self) -> str:
        """The service whose events this store appends (the rows' `producer`)."""
        return self._producer

    async def append(
        self,
        conn: Connection,
        stream_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
    ) -> list[Envelope]:
        """Append after `expected_version` (0 for a new stream), in the caller's transaction.

        Raises ConcurrencyError when the stream is not at `expected_version`, or when a concurrent
        transaction appended the same version first.
        """
        if not events:
            return []
        async with conn.transaction():
            # One appender at a time per database, until its transaction ends: positions then commit
            # in the order they were assigned, and the relay can read "everything after N" safely.
            # Keep appends at the end of a transaction, so the lock is held briefly.
            await lock_for_append(conn)
            cur = await conn.execute(
                "SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = %s", (stream_id,)
            )
            row = await cur.fetchone()
            actual = int(row[0]) if row else 0
            if actual != expected_version:
                raise ConcurrencyError(stream_id, expected_version, actual)
            envelopes = [
                self._envelope(stream_id, expected_version + i + 1, new) for i, new in enumerate(events)
            ]
            params = [
                (
                    env.event_id,
                    env.event_type,
                    env.schema_version,
                    env.stream_id,
                    env.stream_version,
                    self._registry.spec_of(new.payload).topic,
                    env.occurred_at,
                    env.correlation_id,
                    env.causation_id,
                    env.producer,
                    orjson.dumps(env.payload).decode(),
                )
                for env, new in zip(envelopes, events, strict=True)
            ]
            try:
                # A (nested) pipeline block syncs on exit: in a consumer's pipeline mode a duplicate
                # version must surface here, as ConcurrencyError, not later at commit.
                async with conn.pipeline(), conn.cursor() as cur2:
                    await cur2.executemany(
                        "INSERT INTO events (event_id, event_type, schema_version, stream_id, stream_version,"
                        " topic, occurred_at, correlation_id, causation_id, producer, payload)"
                        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)",
                        params,
                    )
            except errors.UniqueViolation as exc:
                raise ConcurrencyError(stream_id, expected_version) from exc
        return envelopes

    def _envelope(self, stream_id: str, version: int, new: NewEvent) -> Envelope:
        spec = self._registry.spec_of(new.payload)
        return Envelope(
            event_id=new.event_id,
            event_type=spec.event_type,
            schema_version=spec.version,
            stream_id=stream_id,
            stream_version=version,
            occurred_at=new.occurred_at or utc_now(),
            correlation_id=current_correlation_id(),
            causation_id=current_causation_id(),
            producer=self._producer,
            payload=new.payload.model_dump(mode="json"),
        )

    async def read_stream(self, conn: Connection, stream_id: str, after_version: int = 0) -> list[Envelope]:
        """The stream's events in order, upcast to their current schema versions."""
        cur = await conn.execute(
            f"SELECT {_COLUMNS} FROM events WHERE stream_id = %s AND stream_version > %s"  # noqa: S608 (constant)
            " ORDER BY stream_version",
            (stream_id, after_version),
        )
        return [self.upcast(str(row[10]), row_to_envelope(row)) for row in await cur.fetchall()]

    async def stream_version(self, conn: Connection, stream_id: str) -> int:
        cur = await conn.execute(
            "SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = %s", (stream_id,)
        )
        row = await cur.fetchone()
        return int(row[0]) if row else 0

    def upcast(self, topic: str, envelope: Envelope) -> Envelope:
        spec = self._registry.spec(topic, envelope.event_type)
        if envelope.schema_version == spec.version:
            return envelope
        payload = self._registry.upcast(topic, envelope.event_type, envelope.schema_version, envelope.payload)
        return envelope.model_copy(update={"payload": payload, "schema_version": spec.version})
