"""The write side for a whole consumer batch: two round trips to PostgreSQL per batch, not per message.

`BatchLedgerStore` is `PgLedgerStore` (same rules, same tables) with the batch's reads done up front
and its appends buffered:

1. `preload(commands)`: one pipelined round trip locks the batch's accounts and the heads of every
   stream the batch touches (in account and stream order, so that two batches lock in the same order),
   reads their events after the cached aggregates' versions (a cached aggregate is checked against its
   head's version and last event id), which accounts are open, where the payment ids are recorded and
   the cancellations waiting for them. (A batch with cancellations first looks up which streams their
   payments are on: one more round trip.)
2. The messages are decided one by one, in order, by their streams' `ServiceLedger`s; each append is
   buffered, and later messages of the batch see what earlier ones did (the aggregates are the same
   objects; the payment index and the open accounts are updated in memory).
3. `flush()` takes the events table's append lock and writes the buffer as three multi-row statements
   (events in order, stream heads, payment index), sent without waiting when the runner pipelines its
   batch, and then the read models of what it appended (`PgLedgerStore.project`: one more round trip,
   two or three multi-row upserts).

The rare paths (parking, a parked message applied, a stream or payment id the preload did not cover)
flush the buffer and fall back to `PgLedgerStore`'s per-call queries, which then see everything the
batch did so far.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from ledger.adapters.sqlarrays import literal
from ledger.adapters.streams import (
    Cached,
    PgLedgerStore,
    as_uuid,
    catch_up,
)
from ledger.application.commands import (
    CancelPayment,
    Command,
    Loaded,
    OpenAccount,
    Parked,
    PostAccrual,
    PostCorrection,
    ReceivePayment,
    Source,
    StreamKey,
    WaitingFor,
)
from ledger.domain.account_ledger import ServiceLedger
from ledger.domain.events import LedgerEvent
from service_runtime.eventstore import lock_for_append

ELECTRICITY = "electricity"

_INDEX_SQL = (
    "SELECT payment_id, account_no, service_code FROM ledger_payment_index WHERE payment_id = ANY(%s)"
)
_HEADS_SQL = (
    "SELECT stream_id, version, last_event_id FROM ledger_streams WHERE stream_id = ANY(%s::text[])"
    " ORDER BY stream_id FOR UPDATE"
)
# The events after the cached aggregate's version (all of them for a stream not cached): a cached
# aggregate is checked against its stream's head (version and last event id), not by re-reading events.
_EVENTS_SQL = """
SELECT e.stream_id, e.stream_version, e.event_id, e.event_type, e.schema_version, e.payload::text
FROM unnest(%s::text[], %s::int[]) AS k(stream_id, after_version)
JOIN events AS e ON e.stream_id = k.stream_id AND e.stream_version > k.after_version
ORDER BY e.stream_id, e.stream_version
"""
_OPEN_SQL = "SELECT account_no FROM ledger_accounts WHERE account_no = ANY(%s::text[])"
_WAITING_SQL = (
    "SELECT payment_id, id, source_topic, source_partition, source_offset, message_key, message"
    " FROM ledger_parked WHERE waiting_for = 'payment' AND payment_id = ANY(%s) ORDER BY id FOR UPDATE"
)
_INSERT_EVENTS_SQL = """
INSERT INTO events (event_id, event_type, schema_version, stream_id, stream_version, topic, occurred_at,
                    correlation_id, causation_id, producer, payload)
SELECT e, t, sv, s, v, %(topic)s, o, c, ca, %(producer)s, payload::jsonb
FROM unnest(%(event_id)s::uuid[], %(event_type)s::text[], %(schema_version)s::int[], %(stream_id)s::text[],
            %(version)s::int[], %(occurred_at)s::timestamptz[], %(correlation_id)b::text[],
            %(causation_id)b::text[], %(payload)b::text[]) AS k(e, t, sv, s, v, o, c, ca, payload)
"""
_UPSERT_HEADS_SQL = """
INSERT INTO ledger_streams (stream_id, account_no, service_code, version, last_event_id, last_tx)
SELECT k.*, pg_current_xact_id() FROM unnest(%s::text[], %s::text[], %s::text[], %s::int[], %s::uuid[]) AS k
ON CONFLICT (stream_id) DO UPDATE
    SET version = excluded.version, last_event_id = excluded.last_event_id, last_tx = excluded.last_tx,
        updated_at = now()
"""
_INSERT_INDEX_SQL = (
    "INSERT INTO ledger_payment_index (payment_id, account_no, service_code)"
    " SELECT * FROM unnest(%b::text[], %s::text[], %s::text[])"
)
# Ids, types, versions, stream ids and ISO timestamps need no quoting (sqlarrays); the rest may be free
# text or NULL.
_LITERAL_EVENT_COLUMNS = ("event_id", "event_type", "schema_version", "stream_id", "version", "occurred_at")
_BINARY_EVENT_COLUMNS = ("correlation_id", "causation_id", "payload")


def stream_of(command: Command | OpenAccount) -> StreamKey | None:
    match command:
        case ReceivePayment() | PostCorrection() | PostAccrual():
            return StreamKey(command.account_no, command.service_code)
        case OpenAccount():
            return StreamKey(command.account_no, ELECTRICITY)
    return None


class BatchLedgerStore(PgLedgerStore):
    """`PgLedgerStore` for a batch: reads up front, appends buffered. Call `preload` first, `flush` last."""

    _ledgers: dict[str, ServiceLedger]
    _open: set[str]
    _accounts_known: set[str]
    _owners: dict[str, StreamKey]
    _payments_known: set[str]
    _waiting: dict[str, list[Parked]]
    _waiting_known: set[str]
    _buffer: list[dict[str, Any]]

    def _reset_state(self) -> None:
        self._ledgers = {}
        self._open = set()
        self._accounts_known = set()
        self._owners = {}
        self._payments_known = set()
        self._waiting = {}
        self._waiting_known = set()
        self._buffer = []

    # --- the batch's reads, at once ---------------------------------------------------------

    async def preload(self, commands: Iterable[Command | OpenAccount]) -> None:
        # Row locks only: the events table's append lock is taken when the batch writes (`flush`), so
        # that another batch's Python work (deciding) overlaps this one's writes (see adapters/streams.py
        # for the lock order).
        self._reset_state()
        keys: dict[str, StreamKey] = {}
        accounts: set[str] = set()
        payments: set[str] = set()
        cancelled: set[str] = set()
        for command in commands:
            accounts.add(command.account_no)
            key = stream_of(command)
            if key is not None:
                keys[key.stream_id] = key
            if isinstance(command, ReceivePayment):
                payments.add(command.payment_id)
            elif isinstance(command, CancelPayment):
                cancelled.add(command.payment_id)
        conn = self._conn
        await self.lock_accounts(sorted(accounts))  # before reading their facts
        if cancelled:  # the streams the cancelled payments are on
            cur = await conn.execute(_INDEX_SQL, (sorted(cancelled),))
            for _, account_no, service_code in await cur.fetchall():
                owner = StreamKey(account_no, service_code)
                keys[owner.stream_id] = owner
        stream_ids = sorted(keys)
        after_versions = [self._cached_version(s) for s in stream_ids]
        async with conn.pipeline():
            heads_cur = await conn.execute(_HEADS_SQL, (literal(stream_ids),))
            events_cur = await conn.execute(_EVENTS_SQL, (literal(stream_ids), literal(after_versions)))
            open_cur = await conn.execute(_OPEN_SQL, (literal(accounts),))
            index_cur = await conn.execute(_INDEX_SQL, (sorted(payments | cancelled),))
            waiting_cur = await conn.execute(_WAITING_SQL, (sorted(payments),))
        heads = {row[0]: row for row in await heads_cur.fetchall()}
        rows = _by_stream(await events_cur.fetchall())
        self._open = {row[0] for row in await open_cur.fetchall()}
        self._accounts_known = accounts
        for payment_id, account_no, service_code in await index_cur.fetchall():
            self._owners[payment_id] = StreamKey(account_no, service_code)
        self._payments_known = payments | cancelled
        for payment_id, *parked in await waiting_cur.fetchall():
            self._waiting.setdefault(payment_id, []).append(self.parked_of(parked))
        self._waiting_known = payments

        unsettled = [
            stream_id
            for stream_id, after_version in zip(stream_ids, after_versions, strict=True)
            if self._settle(keys[stream_id], after_version, rows, heads) is None
        ]
        if unsettled:  # a cache that does not match, or a writer that committed while we waited for its lock
            for stream_id in unsettled:
                self._cache.drop(stream_id)
            cur = await conn.execute(_EVENTS_SQL, (literal(unsettled), literal([0] * len(unsettled))))
            rows = _by_stream(await cur.fetchall())
            for stream_id in unsettled:
                if self._settle(keys[stream_id], 0, rows, heads) is None:
                    raise RuntimeError(f"stream {stream_id} does not match its head")

    def _cached_version(self, stream_id: str) -> int:
        cached = self._cache.get(stream_id)
        return cached.ledger.version if cached is not None else 0

    def _settle(
        self, key: StreamKey, after_version: int, rows: dict[str, list[Any]], heads: dict[str, Any]
    ) -> ServiceLedger | None:
        """The stream's aggregate, checked against its locked head; None when the cache (or the read)
        does not match it: the cached aggregate is not the stored stream's (a rolled-back batch, another
        writer), or a writer committed after the read's snapshot."""
        stream_rows = rows.get(key.stream_id, [])
        head = heads.get(key.stream_id)
        cached = self._cache.get(key.stream_id) if after_version > 0 else None
        last_id: UUID | None
        if cached is not None:
            if stream_rows or head is None or int(head[1]) != after_version:
                return None
            if cached.last_event_id is None or as_uuid(head[2]) != cached.last_event_id:
                return None
            ledger, last_id = cached.ledger, cached.last_event_id
        else:
            fresh = catch_up(key, None, 1, stream_rows)
            assert fresh is not None  # only a cached aggregate can mismatch
            if head is not None and int(head[1]) != fresh.version:
                return None
            ledger, last_id = fresh, (as_uuid(stream_rows[-1][1]) if stream_rows else None)
        self._cache.put(key.stream_id, Cached(ledger, last_id))
        self._ledgers[key.stream_id] = ledger
        return ledger

    # --- LedgerStore --------------------------------------------------------------------------

    async def load(self, key: StreamKey, *, payment_id: str | None = None) -> Loaded:
        ledger = self._ledgers.get(key.stream_id)
        covered = (
            ledger is not None
            and key.account_no in self._accounts_known
            and (
                payment_id is None
                or (payment_id in self._payments_known and payment_id in self._waiting_known)
            )
        )
        if not covered or ledger is None:
            await self.flush()
            loaded = await super().load(key, payment_id=payment_id)
            self._ledgers[key.stream_id] = loaded.ledger
            return loaded
        waiting = tuple(self._waiting.pop(payment_id, ())) if payment_id is not None else ()
        return Loaded(
            key=key,
            ledger=ledger,
            account_open=key.account_no in self._open,
            payment_owner=self._owners.get(payment_id) if payment_id is not None else None,
            waiting_cancellations=waiting,
        )

    async def append(self, loaded: Loaded, event: LedgerEvent, source: Source) -> None:
        row = self.event_row(loaded, event, source)
        self._buffer.append(row)
        self._ledgers[loaded.key.stream_id] = loaded.ledger
        self._cache.put(loaded.key.stream_id, Cached(loaded.ledger, source.event_id))
        if row["payment_id"] is not None:
            self._owners[row["payment_id"]] = loaded.key
            self._payments_known.add(row["payment_id"])

    async def locate_payment(self, account_no: str, payment_id: str) -> tuple[StreamKey | None, bool]:
        if payment_id in self._payments_known and account_no in self._accounts_known:
            return self._owners.get(payment_id), account_no in self._open
        await self.flush()
        return await super().locate_payment(account_no, payment_id)

    async def record_opening(self, command: OpenAccount, source: Source) -> None:
        # No flush: the opening's row does not depend on the buffered appends (an account's openings and
        # parkings are serialized by its advisory lock, taken here, not by the buffer).
        await super().record_opening(command, source)
        self._open.add(command.account_no)
        self._accounts_known.add(command.account_no)

    async def park(
        self, command: Command, source: Source, waiting_for: WaitingFor, payment_id: str | None = None
    ) -> bool:
        await self.flush()
        if not await super().park(command, source, waiting_for, payment_id):
            # The account opened after the preload read it: forget what was read of its streams.
            self._open.add(command.account_no)
            for stream_id in [s for s in self._ledgers if s.startswith(f"ledger:{command.account_no}:")]:
                del self._ledgers[stream_id]
            return False
        if payment_id is not None:  # a cancellation now waits for it: read it from the table next time
            self._waiting_known.discard(payment_id)
            self._waiting.pop(payment_id, None)
        return True

    async def unpark(self, parked: Parked) -> None:
        await self.flush()
        await super().unpark(parked)

    async def take_parked_for_account(self, account_no: str) -> list[Parked]:
        parked = await super().take_parked_for_account(account_no)
        if parked:  # applied next, on the per-call paths, which must see what the batch appended so far
            await self.flush()
        return parked

    # --- the batch's writes, at once --------------------------------------------------------

    async def flush(self) -> None:
        buffer, self._buffer = self._buffer, []
        if not buffer:
            return
        heads: dict[str, dict[str, Any]] = {}
        for row in buffer:
            heads[row["stream_id"]] = row
        payments = [row for row in buffer if row["payment_id"] is not None]
        await lock_for_append(self._conn)  # held to the commit: positions commit in order for the relay
        async with self._conn.cursor() as cur:
            columns: dict[str, Any] = {
                name: literal(row[name] for row in buffer) for name in _LITERAL_EVENT_COLUMNS
            }
            columns["occurred_at"] = literal(row["occurred_at"].isoformat() for row in buffer)  # no space
            columns |= {name: [row[name] for row in buffer] for name in _BINARY_EVENT_COLUMNS}
            await cur.execute(
                _INSERT_EVENTS_SQL,
                {**columns, "topic": self._config.topic, "producer": self._config.producer},
            )
            head_rows = list(heads.values())
            await cur.execute(
                _UPSERT_HEADS_SQL,
                tuple(
                    literal(row[name] for row in head_rows)
                    for name in ("stream_id", "account_no", "service_code", "version", "event_id")
                ),
            )
            if payments:
                await cur.execute(
                    _INSERT_INDEX_SQL,
                    (
                        [row["payment_id"] for row in payments],  # free text
                        literal(row["account_no"] for row in payments),
                        literal(row["service_code"] for row in payments),
                    ),
                )
        await self.project(buffer)


def _by_stream(rows: Iterable[Any]) -> dict[str, list[Any]]:
    """Event rows (stream_id first) → per stream, the rows without the stream id, in version order."""
    grouped: dict[str, list[Any]] = {}
    for row in rows:
        grouped.setdefault(row[0], []).append(row[1:])
    return grouped
