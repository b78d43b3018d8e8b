"""The consumer runner: Kafka in, read-model writes and progress out, in one PostgreSQL transaction.

Two kinds of handler share it:
- a `Projection` of canonical events (our own envelope): a redelivered event is recognized by its
  stream version (`consumer_stream_versions`), so redelivery and replay change nothing;
- an `IngressHandler` of back-office messages: recognized by event id (`consumer_inbox`).

A batch is one transaction: handler writes, de-duplication marks and the partitions' next offsets commit
together, so a consumer killed mid-batch resumes exactly where the last commit left it. A message that
does not parse or validate, or that its handler rejects with `DeadLetter`, goes to `<topic>.dlq` with the
reason, and the batch goes on with the next message.

Batches: a handler gets the whole poll batch (`Projection.apply_batch`, `IngressHandler.handle_batch`;
by default they loop over `apply` / `handle`). When it raises `DeadLetter`, the batch is rolled back
and redone message by message (`apply` / `handle`, a savepoint each), so only the offending message is
dead-lettered. The runner's own progress rows (inbox ids, stream versions, offsets) are written with
one set-based statement each per batch.

A service that needs another runner (a subclass) passes it as `runner_class` to `WorkerSpec` and to the
test harness, never by patching this module.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from uuid import UUID

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.structs import ConsumerRecord, TopicPartition
from prometheus_client import Counter, Histogram
from psycopg.errors import DeadlockDetected, SerializationFailure
from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError

from contracts.envelope import Envelope, IngressEnvelope
from contracts.registry import EventRegistry, UnknownEventType, UnsupportedSchemaVersion, registry
from service_runtime.correlation import handling_event
from service_runtime.db import Connection
from service_runtime.dead_letters import DeadLetter, RejectedMessage, send_dead_letters
from service_runtime.kafka import idempotent_producer, manual_commit_consumer

log = logging.getLogger(__name__)

CONSUMED = Counter("consumer_messages_total", "Messages a consumer handled", ["consumer", "outcome"])
BATCH_SECONDS = Histogram("consumer_batch_seconds", "Time to apply one batch", ["consumer"])
CONFLICTS = Counter(
    "consumer_batch_conflicts_total",
    "Batches PostgreSQL rolled back for a deadlock, then retried",
    ["consumer"],
)
_CONFLICT_ATTEMPTS = 5  # a batch's transactions before a lock conflict counts as a failure of the consumer


# The runner's progress, one statement per batch. Arrays travel as one text literal ('{1,2,3}', parsed
# by PostgreSQL in C) rather than as lists, which psycopg dumps element by element in Python.
_SAVE_OFFSETS_SQL = """
INSERT INTO consumer_offsets (consumer, topic, partition, next_offset)
SELECT %s, k.topic, k.partition, k.next_offset
FROM unnest(%s::text[], %s::int[], %s::int8[]) AS k(topic, partition, next_offset)
ON CONFLICT (consumer, topic, partition) DO UPDATE SET next_offset = excluded.next_offset
"""
_SAVE_STREAM_VERSIONS_SQL = """
INSERT INTO consumer_stream_versions (consumer, stream_id, version)
SELECT %s, k.stream_id, k.version FROM unnest(%s::text[], %s::int[]) AS k(stream_id, version)
ON CONFLICT (consumer, stream_id) DO UPDATE SET version = excluded.version
"""
_SAVE_INBOX_SQL = (
    "INSERT INTO consumer_inbox (consumer, event_id) SELECT %s, unnest(%s::uuid[]) ON CONFLICT DO NOTHING"
)


def _int_array(values: Iterable[int]) -> str:
    """A PostgreSQL array literal of integers."""
    return "{" + ",".join([str(int(v)) for v in values]) + "}"


def _uuid_array(values: Iterable[UUID]) -> str:
    """A PostgreSQL array literal of uuids (their text form needs no quoting)."""
    return "{" + ",".join([str(v) for v in values]) + "}"


def _text_array(values: Iterable[str]) -> str:
    """A PostgreSQL array literal of any strings: each quoted, backslashes and quotes escaped."""
    quoted = ['"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values]
    return "{" + ",".join(quoted) + "}"


@dataclass(frozen=True, slots=True)
class CanonicalEvent:
    envelope: Envelope
    payload: Any  # the registered pydantic model of envelope.event_type, upcast to its current version
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class IngressMessage:
    envelope: IngressEnvelope
    payload: Any
    key: str | None
    topic: str
    partition: int
    offset: int


class Projection(ABC):
    """A read model built from canonical events. `name` is its consumer id and must be unique per service."""

    name: ClassVar[str]
    topics: ClassVar[tuple[str, ...]]
    # Event types this projection applies; others only advance its progress.
    handles: ClassVar[frozenset[str]]

    @abstractmethod
    async def apply(self, conn: Connection, event: CanonicalEvent) -> None: ...

    async def apply_batch(self, conn: Connection, events: Sequence[CanonicalEvent]) -> None:
        """Override to write a whole batch at once; the default applies one by one."""
        for event in events:
            await self.apply(conn, event)

    @abstractmethod
    async def reset(self, conn: Connection) -> None:
        """Empty the read model, for a rebuild."""


class IngressHandler(ABC):
    """Turns back-office messages into the service's own events (usually by appending to its store)."""

    name: ClassVar[str]
    topics: ClassVar[tuple[str, ...]]
    # True for a handler whose every fact carries its own idempotency key that it enforces itself (a
    # payment id, a correction id, ...): the same message handled twice changes nothing. The runner
    # then neither looks up nor records event ids in `consumer_inbox` (a lookup and an insert per
    # message that would only repeat what the handler guarantees).
    idempotent_by_content: ClassVar[bool] = False

    @abstractmethod
    async def handle(self, conn: Connection, message: IngressMessage) -> None: ...

    async def handle_batch(self, conn: Connection, messages: Sequence[IngressMessage]) -> None:
        """Override to handle a whole batch at once (in the batch's transaction); the default handles
        one by one. Raising `DeadLetter` makes the runner redo the batch through `handle`, one message
        per savepoint, and dead-letter only the message that raises it there."""
        for message in messages:
            with handling_event(str(message.envelope.event_id), None):
                await self.handle(conn, message)


@dataclass(frozen=True, slots=True)
class _Parsed:
    record: ConsumerRecord[bytes, bytes]
    item: CanonicalEvent | IngressMessage


class _CarefulRetry(Exception):
    """A handler dead-lettered a message: redo the batch with a savepoint around each message."""


class ConsumerRunner:
    def __init__(
        self,
        handler: Projection | IngressHandler,
        pool: AsyncConnectionPool[Connection],
        bootstrap_servers: str,
        *,
        service: str,
        batch_size: int = 500,
        event_registry: EventRegistry = registry,
    ) -> None:
        self.handler = handler
        self.consumer_id = f"{service}.{handler.name}"
        self._pool = pool
        self._bootstrap = bootstrap_servers
        self._batch_size = batch_size
        self._registry = event_registry
        self._is_projection = isinstance(handler, Projection)
        self._handles = handler.handles if isinstance(handler, Projection) else None
        self._uses_inbox = isinstance(handler, IngressHandler) and not handler.idempotent_by_content
        self._consumer: AIOKafkaConsumer | None = None
        self._dlq_producer: AIOKafkaProducer | None = None
        self._stopping = False
        self.applied = 0

    # --- lifecycle -------------------------------------------------------------------------------
    async def run(self) -> None:
        backoff = 0.2
        try:
            while not self._stopping:
                try:
                    await self._start_clients()
                    while not self._stopping:
                        await self.poll_once()
                        backoff = 0.2
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning(
                        "consumer failed; resuming from the last committed offsets",
                        extra={"consumer": self.consumer_id, "error": repr(exc)},
                    )
                    await self._stop_clients()
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            # Leave the group at once, so its partitions go to another member without waiting for a timeout.
            await self._stop_clients()

    def stop(self) -> None:
        self._stopping = True

    async def _start_clients(self) -> None:
        if self._consumer is not None:
            return
        producer = idempotent_producer(self._bootstrap, client_id=f"{self.consumer_id}-dlq")
        consumer = manual_commit_consumer(
            self._bootstrap, group_id=self.consumer_id, client_id=self.consumer_id
        )
        try:
            await producer.start()
            consumer.subscribe(list(self.handler.topics), listener=_SeekToStoredOffsets(self, consumer))
            await consumer.start()
        except Exception:
            await stop_quietly(consumer)
            await stop_quietly(producer)
            raise
        self._consumer, self._dlq_producer = consumer, producer

    async def _stop_clients(self) -> None:
        consumer, producer = self._consumer, self._dlq_producer
        self._consumer = self._dlq_producer = None
        for client in (consumer, producer):
            if client is not None:
                await stop_quietly(client)

    async def stored_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT topic, partition, next_offset FROM consumer_offsets WHERE consumer = %s",
                (self.consumer_id,),
            )
            stored = {TopicPartition(t, p): int(o) for t, p, o in await cur.fetchall()}
        return {tp: stored[tp] for tp in partitions if tp in stored}

    # --- one batch -------------------------------------------------------------------------------
    async def poll_once(self, timeout_ms: int = 500) -> int:
        assert self._consumer is not None and self._dlq_producer is not None
        fetched = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=self._batch_size)
        records = [record for batch in fetched.values() for record in batch]
        if not records:
            return 0
        # A partition's records come in offset order: its next offset is after its last record.
        next_offsets = {tp: batch[-1].offset + 1 for tp, batch in fetched.items() if batch}
        with BATCH_SECONDS.labels(self.consumer_id).time():
            parsed, rejected = self._parse_all(records)
            for attempt in range(1, _CONFLICT_ATTEMPTS + 1):
                try:
                    await self._commit_with_dead_letters(records, parsed, rejected, next_offsets)
                    break
                except (DeadlockDetected, SerializationFailure) as exc:
                    # PostgreSQL rolled the batch back to break a lock cycle with another consumer's
                    # transaction (that one goes on): the same batch again, in a new transaction.
                    if attempt == _CONFLICT_ATTEMPTS:
                        raise
                    CONFLICTS.labels(self.consumer_id).inc()
                    log.info(
                        "batch rolled back by a lock conflict; retrying it",
                        extra={"consumer": self.consumer_id, "attempt": attempt, "error": type(exc).__name__},
                    )
                    await asyncio.sleep(0.02 * attempt)
        try:  # Kafka's own copy, for lag monitoring only: the truth is in PostgreSQL.
            await self._consumer.commit(next_offsets)
        except Exception:
            log.debug("kafka offset commit failed", exc_info=True)
        return len(records)

    async def _commit_with_dead_letters(
        self,
        records: list[ConsumerRecord[bytes, bytes]],
        parsed: list[_Parsed],
        rejected: list[RejectedMessage],
        next_offsets: dict[TopicPartition, int],
    ) -> None:
        """The batch at once; after a dead letter, again message by message (one savepoint each)."""
        try:
            await self._commit_batch(records, parsed, rejected, careful=False, next_offsets=next_offsets)
        except _CarefulRetry:
            await self._commit_batch(records, parsed, rejected, careful=True, next_offsets=next_offsets)

    def _parse_all(
        self, records: list[ConsumerRecord[bytes, bytes]]
    ) -> tuple[list[_Parsed], list[RejectedMessage]]:
        parsed: list[_Parsed] = []
        rejected: list[RejectedMessage] = []
        for record in records:
            try:
                parsed.append(_Parsed(record, self._parse(record)))
            except (ValidationError, ValueError, UnknownEventType, UnsupportedSchemaVersion) as exc:
                rejected.append(RejectedMessage(record, _reason(exc)))
        return parsed, rejected

    def _parse(self, record: ConsumerRecord[bytes, bytes]) -> CanonicalEvent | IngressMessage:
        if record.value is None:
            raise ValueError("empty message")
        if self._handles is not None:  # a projection
            envelope = Envelope.model_validate_json(record.value)
            # Events this projection doesn't apply only advance its progress: they aren't its to judge.
            payload = (
                self._payload(record.topic, envelope.event_type, envelope.schema_version, envelope.payload)
                if envelope.event_type in self._handles
                else None
            )
            return CanonicalEvent(envelope, payload, record.topic, record.partition, record.offset)
        ingress = IngressEnvelope.model_validate_json(record.value)
        payload = self._payload(record.topic, ingress.event_type, ingress.schema_version, ingress.payload)
        key = record.key.decode("utf-8", errors="replace") if record.key is not None else None
        return IngressMessage(ingress, payload, key, record.topic, record.partition, record.offset)

    def _payload(self, topic: str, event_type: str, version: int, payload: dict[str, Any]) -> Any:
        """`EventRegistry.parse`, with the current version's model validating at once (no upcast)."""
        spec = self._registry.spec(topic, event_type)
        if version == spec.version:
            return spec.model.model_validate(payload)
        return self._registry.parse(topic, event_type, version, payload)

    async def _commit_batch(
        self,
        records: list[ConsumerRecord[bytes, bytes]],
        parsed: list[_Parsed],
        parse_rejected: list[RejectedMessage],
        *,
        careful: bool,
        next_offsets: dict[TopicPartition, int] | None = None,
    ) -> None:
        rejected = list(parse_rejected)
        # Pipeline mode: the batch's statements go out without waiting for each answer.
        async with self._pool.connection() as conn, conn.pipeline(), conn.transaction():
            fresh = await self._fresh(conn, parsed)
            if self._is_projection:
                rejected += await self._apply_projection(conn, fresh, careful=careful)
            else:
                rejected += await self._apply_ingress(conn, fresh, careful=careful)
            # A rejected message is not "done": replayed from its dead-letter topic after a fix, it applies.
            done = fresh
            if rejected:
                rejected_records = {id(r.record) for r in rejected}
                done = [p for p in fresh if id(p.record) not in rejected_records]
            await self._mark_done(conn, done)
            if next_offsets is None:
                next_offsets = _next_offsets(records)
            await conn.execute(
                _SAVE_OFFSETS_SQL,
                (
                    self.consumer_id,
                    _text_array(tp.topic for tp in next_offsets),
                    _int_array(tp.partition for tp in next_offsets),
                    _int_array(next_offsets.values()),
                ),
            )
            if rejected:
                assert self._dlq_producer is not None
                # Before the commit: if the dead letter can't be written, the batch is redelivered.
                await send_dead_letters(self._dlq_producer, self.consumer_id, rejected)
        handler_rejected = len(rejected) - len(parse_rejected)
        self.applied += len(fresh) - handler_rejected
        CONSUMED.labels(self.consumer_id, "applied").inc(len(fresh) - handler_rejected)
        CONSUMED.labels(self.consumer_id, "duplicate").inc(len(parsed) - len(fresh))
        CONSUMED.labels(self.consumer_id, "dead_letter").inc(len(rejected))

    async def _fresh(self, conn: Connection, parsed: list[_Parsed]) -> list[_Parsed]:
        """The messages not applied before, in order (duplicates inside the batch dropped too); for a
        handler `idempotent_by_content`, all of them: it drops what it applied before itself."""
        fresh: list[_Parsed] = []
        if self._is_projection:
            streams = {p.item.envelope.stream_id for p in parsed if isinstance(p.item, CanonicalEvent)}
            cur = await conn.execute(
                "SELECT stream_id, version FROM consumer_stream_versions"
                " WHERE consumer = %s AND stream_id = ANY(%s::text[])",
                (self.consumer_id, _text_array(streams)),
            )
            seen_versions = {s: int(v) for s, v in await cur.fetchall()}
            for p in parsed:
                env = p.item.envelope
                assert isinstance(env, Envelope)
                if env.stream_version > seen_versions.get(env.stream_id, 0):
                    seen_versions[env.stream_id] = env.stream_version
                    fresh.append(p)
            return fresh
        if not self._uses_inbox:
            return list(parsed)
        ids = {p.item.envelope.event_id for p in parsed}
        cur = await conn.execute(
            "SELECT event_id FROM consumer_inbox WHERE consumer = %s AND event_id = ANY(%s::uuid[])",
            (self.consumer_id, _uuid_array(ids)),
        )
        seen_ids: set[UUID] = {row[0] for row in await cur.fetchall()}
        for p in parsed:
            if p.item.envelope.event_id not in seen_ids:
                seen_ids.add(p.item.envelope.event_id)
                fresh.append(p)
        return fresh

    async def _apply_projection(
        self, conn: Connection, fresh: list[_Parsed], *, careful: bool
    ) -> list[RejectedMessage]:
        projection = self.handler
        assert isinstance(projection, Projection)
        relevant = [p for p in fresh if p.item.envelope.event_type in projection.handles]
        if not careful:
            try:
                await projection.apply_batch(conn, [p.item for p in relevant])  # type: ignore[misc]
            except DeadLetter as exc:
                raise _CarefulRetry from exc
            return []
        rejected: list[RejectedMessage] = []
        for p in relevant:
            assert isinstance(p.item, CanonicalEvent)
            try:
                async with conn.transaction():
                    with handling_event(str(p.item.envelope.event_id), p.item.envelope.correlation_id):
                        await projection.apply(conn, p.item)
            except DeadLetter as exc:
                rejected.append(RejectedMessage(p.record, exc.reason))
        return rejected

    async def _apply_ingress(
        self, conn: Connection, fresh: list[_Parsed], *, careful: bool
    ) -> list[RejectedMessage]:
        handler = self.handler
        assert isinstance(handler, IngressHandler)
        if not careful:
            messages = [p.item for p in fresh if isinstance(p.item, IngressMessage)]
            if messages:
                try:
                    await handler.handle_batch(conn, messages)
                except DeadLetter as exc:
                    raise _CarefulRetry from exc
            return []
        rejected: list[RejectedMessage] = []
        for p in fresh:
            assert isinstance(p.item, IngressMessage)
            try:
                with handling_event(str(p.item.envelope.event_id), None):
                    async with conn.transaction():
                        await handler.handle(conn, p.item)
            except DeadLetter as exc:
                rejected.append(RejectedMessage(p.record, exc.reason))
        return rejected

    async def _mark_done(self, conn: Connection, fresh: list[_Parsed]) -> None:
        """Record what the batch applied: one statement, whatever the batch's size."""
        if not fresh:
            return
        if self._is_projection:
            latest: dict[str, int] = {}
            for p in fresh:
                env = p.item.envelope
                assert isinstance(env, Envelope)
                latest[env.stream_id] = env.stream_version
            await conn.execute(
                _SAVE_STREAM_VERSIONS_SQL,
                (self.consumer_id, _text_array(latest), _int_array(latest.values())),
            )
        elif self._uses_inbox:  # already unique: `_fresh` dropped the duplicates
            await conn.execute(
                _SAVE_INBOX_SQL, (self.consumer_id, _uuid_array(p.item.envelope.event_id for p in fresh))
            )

    # --- rebuild ---------------------------------------------------------------------------------
    async def reset_for_rebuild(self) -> None:
        """Drop the read model and this consumer's progress; the next run replays from the beginning."""
        projection = self.handler
        if not isinstance(projection, Projection):
            raise TypeError("only projections are rebuilt; ingress handlers append to the event store")
        async with self._pool.connection() as conn, conn.transaction():
            await projection.reset(conn)
            for table in ("consumer_offsets", "consumer_stream_versions", "consumer_inbox"):
                await conn.execute(f"DELETE FROM {table} WHERE consumer = %s", (self.consumer_id,))  # noqa: S608


async def stop_quietly(client: AIOKafkaConsumer | AIOKafkaProducer) -> None:
    """Stop a Kafka client, swallowing its failures. While the broker is down, aiokafka's consumer.stop()
    can re-raise the CancelledError of its own cancelled fetch task; let that through only when this task
    is really being cancelled (else the worker exited with status 1 on a Kafka restart: issue 11)."""
    try:
        await client.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.warning("a Kafka client's stop raised CancelledError of its own task; ignored")
    except Exception:
        log.debug("client stop failed", exc_info=True)


class _SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    """On assignment, continue from the offsets committed with the read model (or from the start)."""

    def __init__(self, runner: ConsumerRunner, consumer: AIOKafkaConsumer) -> None:
        self._runner = runner
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        # Always seek: Kafka's committed offsets are only a monitoring copy and may be ahead after a rebuild.
        consumer = self._consumer
        partitions = list(assigned)
        stored = await self._runner.stored_offsets(partitions)
        unstored = [tp for tp in partitions if tp not in stored]
        for tp, offset in stored.items():
            consumer.seek(tp, offset)
        if unstored:
            await consumer.seek_to_beginning(*unstored)


def _next_offsets(records: list[ConsumerRecord[bytes, bytes]]) -> dict[TopicPartition, int]:
    offsets: dict[TopicPartition, int] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
    return offsets


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        errors = exc.errors(include_url=False, include_input=False)
        parts = [f"{'.'.join(str(x) for x in e['loc']) or '<root>'}: {e['msg']}" for e in errors[:10]]
        return f"validation failed: {'; '.join(parts)}"
    if isinstance(exc, UnknownEventType):
        return f"unknown event type: {exc}"
    if isinstance(exc, UnsupportedSchemaVersion):
        return f"unsupported schema version: {exc}"
    return f"malformed message: {exc}"
