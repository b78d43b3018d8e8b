"""The write side's PostgreSQL storage: ledger streams in the event store, parked messages, the opening
register and the payment index. Everything runs in the consumer's batch transaction.

Streams are the runtime's `events` table (the outbox too); this adapter appends to it directly so that
one fact costs one synchronous round trip to PostgreSQL:

Locks, always in this order:
1. accounts (advisory, `lock_accounts`: a batch's preload takes all of its accounts', in account
   order): the facts of one account are decided one transaction after the other. A payment and its
   cancellation (same account) can't race (a cancellation never parks to wait for a payment being
   recorded meanwhile), nor an opening and the facts parked until it;
2. stream heads (`FOR UPDATE` rows of `ledger_streams`, taken by the load; by a batch's preload for all
   its streams, in stream order);
3. the runtime's append lock on the events table (`lock_for_append`), just before the first write of
   events, held to the end of the transaction: appends are serialized per database, so positions
   commit in order for the relay.
Deciding happens under the first two only, so two consumers' batches overlap: one decides while the
other writes. A path that takes a lock out of this order (a fact of an account the batch did not start
with) can meet another batch in a deadlock; PostgreSQL aborts one of the two and the runner retries
that batch in a new transaction. Nothing is applied twice.

- **load** (one round trip, pipelined statements): lock the stream's head row in `ledger_streams`
  (`FOR UPDATE`: concurrent writers of one stream queue instead of failing), read the stream's events,
  whether the account is open, where the payment id is recorded, and the cancellations waiting for it;
- **decide** with the `ServiceLedger` aggregate;
- **append** (one statement, sent without waiting when the runner pipelines its batch): the event row,
  the stream head, and for a payment its `ledger_payment_index` row. Should anything conflict anyway,
  the statement fails, the batch rolls back and the runner redelivers it.

Aggregates are cached (`AggregateCache`, an LRU bounded by events), keyed by stream with the version
and the id of the last event they include. A cached aggregate is used only if the stream's event at that
version still has that id (the load reads the events from that version on), so an aggregate that got
ahead of the database (a rolled-back batch) or behind it (another writer) is reloaded or caught up.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import orjson
from pydantic import BaseModel

from contracts.registry import EventRegistry, registry
from contracts.topics import TopicKind, topic_spec
from ledger.adapters.codec import from_stored, to_contract
from ledger.adapters.dead_letters import DeadLetterSender
from ledger.adapters.messages import envelope_bytes, parse_stored
from ledger.adapters.projections import project_inline
from ledger.adapters.sqlarrays import literal
from ledger.application.commands import (
    Command,
    Loaded,
    OpenAccount,
    Parked,
    Source,
    StreamKey,
    WaitingFor,
)
from ledger.domain.account_ledger import ServiceLedger
from ledger.domain.events import LedgerEvent, PaymentReceived, PaymentReversed
from service_runtime.correlation import current_causation_id, current_correlation_id
from service_runtime.db import Connection
from service_runtime.eventstore import lock_for_append

log = logging.getLogger(__name__)

_HEAD_SQL = "SELECT version, last_event_id FROM ledger_streams WHERE stream_id = %s FOR UPDATE"
_EVENTS_SQL = (
    "SELECT stream_version, event_id, event_type, schema_version, payload::text FROM events"
    " WHERE stream_id = %s AND stream_version >= %s ORDER BY stream_version"
)
_FACTS_SQL = (
    "SELECT EXISTS (SELECT 1 FROM ledger_accounts WHERE account_no = %s), i.account_no, i.service_code"
    " FROM (SELECT 1) AS one LEFT JOIN ledger_payment_index AS i ON i.payment_id = %s"
)
# In array order (callers sort): two transactions take their common accounts in the same order.
_ACCOUNT_LOCKS_SQL = "SELECT pg_advisory_xact_lock(hashtextextended(a, 7201)) FROM unnest(%s::text[]) AS a"
_PARKED_COLUMNS = "id, source_topic, source_partition, source_offset, message_key, message"
_WAITING_SQL = (
    f"SELECT {_PARKED_COLUMNS} FROM ledger_parked"  # noqa: S608 (constant)
    " WHERE waiting_for = 'payment' AND payment_id = %s ORDER BY id FOR UPDATE"
)
_APPEND_SQL = """
WITH appended AS (
    INSERT INTO events (event_id, event_type, schema_version, stream_id, stream_version, topic, occurred_at,
                        correlation_id, causation_id, producer, payload)
    VALUES (%(event_id)s, %(event_type)s, %(schema_version)s, %(stream_id)s, %(version)s, %(topic)s,
            %(occurred_at)s, %(correlation_id)s, %(causation_id)s, %(producer)s, %(payload)s::jsonb)
), head AS (
    INSERT INTO ledger_streams (stream_id, account_no, service_code, version, last_event_id, last_tx)
    VALUES (%(stream_id)s, %(account_no)s, %(service_code)s, %(version)s, %(event_id)s, pg_current_xact_id())
    ON CONFLICT (stream_id) DO UPDATE
        SET version = excluded.version, last_event_id = excluded.last_event_id, last_tx = excluded.last_tx,
            updated_at = now()
)
INSERT INTO ledger_payment_index (payment_id, account_no, service_code)
SELECT %(payment_id)s, %(account_no)s, %(service_code)s WHERE %(payment_id)s::text IS NOT NULL
"""


@dataclass
class Cached:
    ledger: ServiceLedger
    last_event_id: UUID | None


class AggregateCache:
    """A bounded LRU of aggregates, weighed by their events (an aggregate's memory grows with its
    stream: ~0.25 KB per event, see domain/shared.py), shared by the worker's inputs.

    Sharing is safe because a cached aggregate is only trusted after it was checked against the stream
    under the stream's lock (see `catch_up`): whoever moved it last, and whether that transaction
    committed or not, a mismatch means a reload."""

    def __init__(self, max_events: int) -> None:
        self._max = max_events
        self._entries: OrderedDict[str, Cached] = OrderedDict()
        self._weights: dict[str, int] = {}
        self.events = 0
        self.evictions = 0

    def get(self, stream_id: str) -> Cached | None:
        entry = self._entries.get(stream_id)
        if entry is not None:
            self._entries.move_to_end(stream_id)
        return entry

    def put(self, stream_id: str, entry: Cached) -> None:
        weight = max(1, entry.ledger.version)
        self.events += weight - self._weights.get(stream_id, 0)
        self._weights[stream_id] = weight
        self._entries[stream_id] = entry
        self._entries.move_to_end(stream_id)
        while self.events > self._max and len(self._entries) > 1:
            evicted, _ = self._entries.popitem(last=False)
            self.events -= self._weights.pop(evicted)
            self.evictions += 1

    def drop(self, stream_id: str) -> None:
        if self._entries.pop(stream_id, None) is not None:
            self.events -= self._weights.pop(stream_id)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True)
class StoreConfig:
    """Where appended events go and who they are from; the same for every message of a handler."""

    topic: str
    producer: str = "ledger"
    event_registry: EventRegistry = field(default_factory=lambda: registry)
    # Write the ledger's read models (`ledger_periods`, `ledger_period_streams`, `ledger_payments`) in
    # the transaction that appends the events (see `adapters.projections.project_inline`). Off: they
    # are left to the `ledger-read-models` consumer of the ledger's topic.
    inline_read_models: bool = True


class PgLedgerStore:
    """`application.commands.LedgerStore` on PostgreSQL, in the caller's transaction."""

    def __init__(
        self,
        conn: Connection,
        cache: AggregateCache,
        config: StoreConfig,
        dead_letters: DeadLetterSender,
    ) -> None:
        self._conn = conn
        self._cache = cache
        self._config = config
        self._dead_letters = dead_letters

    # --- streams ------------------------------------------------------------------------------

    async def load(self, key: StreamKey, *, payment_id: str | None = None) -> Loaded:
        stream_id = key.stream_id
        cached = self._cache.get(stream_id)
        from_version = cached.ledger.version if cached is not None and cached.ledger.version > 0 else 1
        for _ in range(5):
            head, rows, facts, waiting = await self._read(key, from_version, payment_id)
            ledger = catch_up(key, cached, from_version, rows)
            if ledger is None:  # the cached aggregate does not match the stream: read it whole
                self._cache.drop(stream_id)
                cached, from_version = None, 1
                head, rows, facts, waiting = await self._read(key, 1, payment_id)
                ledger = catch_up(key, None, 1, rows)
                assert ledger is not None
            head_version = int(head[0]) if head is not None else ledger.version
            if ledger.version == head_version:
                break
            # The lock waited for a writer that committed after this statement's snapshot: read again.
            self._cache.drop(stream_id)
            cached, from_version = None, 1
        else:  # pragma: no cover - a stream that keeps moving under a held lock cannot happen
            raise RuntimeError(f"stream {stream_id} does not settle")
        last_id = as_uuid(rows[-1][1]) if rows else (cached.last_event_id if cached else None)
        self._cache.put(stream_id, Cached(ledger, last_id))
        account_open, owner_account, owner_service = facts
        owner = StreamKey(owner_account, owner_service) if owner_account is not None else None
        return Loaded(
            key=key,
            ledger=ledger,
            account_open=bool(account_open),
            payment_owner=owner,
            waiting_cancellations=tuple(self.parked_of(row) for row in waiting),
        )

    async def _read(
        self, key: StreamKey, from_version: int, payment_id: str | None
    ) -> tuple[Any, list[Any], Any, list[Any]]:
        conn = self._conn
        stream_id = key.stream_id
        async with conn.pipeline():
            await self.lock_accounts([key.account_no])
            head_cur = await conn.execute(_HEAD_SQL, (stream_id,))
            events_cur = await conn.execute(_EVENTS_SQL, (stream_id, from_version))
            facts_cur = await conn.execute(_FACTS_SQL, (key.account_no, payment_id))
            waiting_cur = await conn.execute(_WAITING_SQL, (payment_id,)) if payment_id is not None else None
        head = await head_cur.fetchone()
        rows = await events_cur.fetchall()
        facts = await facts_cur.fetchone()
        waiting = await waiting_cur.fetchall() if waiting_cur is not None else []
        return head, rows, facts, waiting

    async def append(self, loaded: Loaded, event: LedgerEvent, source: Source) -> None:
        row = self.event_row(loaded, event, source)
        await lock_for_append(self._conn)  # after the stream's row lock (see the lock order above)
        await self._conn.execute(_APPEND_SQL, row)
        await self.project([row])
        self._cache.put(loaded.key.stream_id, Cached(loaded.ledger, source.event_id))

    async def project(self, rows: list[dict[str, Any]]) -> None:
        """The read models of the appended `rows` (`event_row`s, in append order), in this transaction:
        a read model is never behind (nor ahead of) the event store it is folded from."""
        if self._config.inline_read_models and rows:
            await project_inline(
                self._conn,
                [(row["account_no"], row["service_code"], row["version"], row["contract"]) for row in rows],
            )

    def event_row(self, loaded: Loaded, event: LedgerEvent, source: Source) -> dict[str, Any]:
        """The row of `event` (already applied to `loaded.ledger`, so at its version)."""
        key, ledger = loaded.key, loaded.ledger
        reversed_payment: PaymentReceived | None = None
        if isinstance(event, PaymentReversed):
            reversed_payment = ledger.known_payment(event.payment_id)
        payload = to_contract(key.account_no, key.service_code, event, reversed_payment)
        spec = self._config.event_registry.spec_of(payload)
        return {
            "event_id": source.event_id,
            "event_type": spec.event_type,
            "schema_version": spec.version,
            "stream_id": key.stream_id,
            "version": ledger.version,
            "topic": self._config.topic,
            "occurred_at": source.occurred_at,
            "correlation_id": current_correlation_id(),
            "causation_id": current_causation_id(),
            "producer": self._config.producer,
            "payload": payload.model_dump_json(),
            "contract": payload,  # for the inline read models
            "account_no": key.account_no,
            "service_code": key.service_code,
            "payment_id": event.payment_id if isinstance(event, PaymentReceived) else None,
        }

    async def locate_payment(self, account_no: str, payment_id: str) -> tuple[StreamKey | None, bool]:
        await self.lock_accounts([account_no])
        cur = await self._conn.execute(_FACTS_SQL, (account_no, payment_id))
        row = await cur.fetchone()
        assert row is not None
        account_open, owner_account, owner_service = row
        owner = StreamKey(owner_account, owner_service) if owner_account is not None else None
        return owner, bool(account_open)

    # --- accounts -----------------------------------------------------------------------------

    async def record_opening(self, command: OpenAccount, source: Source) -> None:
        await self.lock_account(command.account_no)
        await self._conn.execute(
            "INSERT INTO ledger_accounts (account_no, opened_on, opening_balance, event_id)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (account_no) DO NOTHING",
            (command.account_no, command.opened_on, command.opening_balance, source.event_id),
        )

    async def lock_accounts(self, account_nos: list[str]) -> None:
        """Lock accounts until the transaction ends (pass them sorted; taking one again is free).

        Openings (upstream-ingress) and payments, cancellations or corrections (backoffice-ingress) are
        applied by several consumers at once. Without this lock, a payment could see the account not
        open, and be parked after the opening had already taken the parked messages: it would wait
        forever; or a cancellation could park to wait for a payment that another transaction is
        recording. Taken before the account's facts are read (see the lock order in the module doc)."""
        if account_nos:
            await self._conn.execute(_ACCOUNT_LOCKS_SQL, (literal(account_nos),))

    async def lock_account(self, account_no: str) -> None:
        await self.lock_accounts([account_no])

    # --- parked messages ----------------------------------------------------------------------

    async def park(
        self, command: Command, source: Source, waiting_for: WaitingFor, payment_id: str | None = None
    ) -> bool:
        envelope = source.envelope
        assert isinstance(envelope, BaseModel)
        if waiting_for == "account":  # unless the account opened meanwhile (see lock_account)
            await self.lock_account(command.account_no)
            cur = await self._conn.execute(
                "SELECT EXISTS (SELECT 1 FROM ledger_accounts WHERE account_no = %s)", (command.account_no,)
            )
            row = await cur.fetchone()
            if row is not None and row[0]:
                return False
        await self._conn.execute(
            "INSERT INTO ledger_parked (event_id, account_no, waiting_for, payment_id, event_type,"
            " source_topic, source_partition, source_offset, message_key, message)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING",
            (
                source.event_id,
                command.account_no,
                waiting_for,
                payment_id,
                source.event_type,
                source.topic,
                source.partition,
                source.offset,
                source.key,
                envelope_bytes(envelope),
            ),
        )
        log.info(
            "message parked",
            extra={
                "event_id": str(source.event_id),
                "event_type": source.event_type,
                "account_no": command.account_no,
                "waiting_for": waiting_for,
            },
        )
        return True

    async def unpark(self, parked: Parked) -> None:
        await self._conn.execute("DELETE FROM ledger_parked WHERE id = %s", (parked.id,))

    async def take_parked_for_account(self, account_no: str) -> list[Parked]:
        cur = await self._conn.execute(
            f"DELETE FROM ledger_parked WHERE account_no = %s AND waiting_for = 'account'"  # noqa: S608
            f" RETURNING {_PARKED_COLUMNS}",
            (account_no,),
        )
        rows = sorted(await cur.fetchall(), key=lambda row: int(row[0]))
        return [self.parked_of(row) for row in rows]

    def parked_of(self, row: Any) -> Parked:
        parked_id, topic, partition, offset, key, message = row
        command, source = parse_stored(
            self._config.event_registry,
            topic=topic,
            partition=int(partition),
            offset=int(offset),
            key=bytes(key) if key is not None else None,
            message=bytes(message),
            canonical=_is_canonical(topic),
        )
        assert not isinstance(command, OpenAccount)
        return Parked(int(parked_id), command, source)

    async def dead_letter(self, parked: Parked, reason: str) -> None:
        source = parked.source
        assert isinstance(source.envelope, BaseModel)
        await self._dead_letters.send(
            topic=source.topic,
            partition=source.partition,
            offset=source.offset,
            key=source.key,
            value=envelope_bytes(source.envelope),
            reason=reason,
        )


def _is_canonical(topic: str) -> bool:
    try:
        return topic_spec(topic).kind is TopicKind.CANONICAL
    except KeyError:  # a topic outside the catalog (benchmarks, tests): canonical ones are *.events.*
        return ".events." in topic


def as_uuid(value: object) -> UUID:
    """A uuid column's value (psycopg loads it as a UUID already)."""
    return value if isinstance(value, UUID) else UUID(str(value))


def catch_up(
    key: StreamKey, cached: Cached | None, from_version: int, rows: list[Any]
) -> ServiceLedger | None:
    """The aggregate at the stream's end: the cached one plus the newer events, or None when the cache
    does not match the stream (its last event is not the stored one at that version)."""
    if cached is None or (from_version == 1 and cached.ledger.version == 0):
        ledger = ServiceLedger(key.account_no, key.service_code)
        todo = rows
    else:
        if not rows or int(rows[0][0]) != from_version or as_uuid(rows[0][1]) != cached.last_event_id:
            return None
        ledger = cached.ledger
        todo = rows[1:]
    for version, _event_id, event_type, schema_version, payload in todo:
        if int(version) != ledger.version + 1:
            raise RuntimeError(f"stream {key.stream_id}: version {version} after {ledger.version}")
        ledger.apply(from_stored(event_type, int(schema_version), orjson.loads(payload)))
    return ledger
