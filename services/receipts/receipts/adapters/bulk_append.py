"""Appending the first event of many new streams at once (the issuing of a batch's bills).

`EventStore.append` costs a savepoint, the append lock, a version query and a synced insert per stream;
issuing a billing run's bills appends one ReceiptIssued to each of thousands of new streams. This is the
same append for many new streams in two statements: the append lock (positions must commit in order for
the relay) and one multi-row `INSERT ... SELECT FROM unnest(...)` with binary array parameters. The
rows are those `append` writes (the store's producer, the current correlation and causation ids, the
payload's JSON form). The caller has made sure the streams are empty (under the
accounts' issuing locks); should one not be, the `(stream_id, stream_version)` key fails the whole
transaction, which the consumer then retries (nothing half-written).

Proposed for the runtime: `EventStore.append_many(conn, [(stream_id, expected_version, events)])`.
"""

from __future__ import annotations

from collections.abc import Sequence

from contracts.envelope import utc_now
from contracts.registry import registry
from service_runtime.correlation import current_causation_id, current_correlation_id
from service_runtime.db import Connection
from service_runtime.eventstore import EventStore, NewEvent, lock_for_append


async def append_new_streams(
    conn: Connection, store: EventStore, items: Sequence[tuple[str, NewEvent]]
) -> None:
    """Append each event as version 1 of its (empty) stream, in the caller's transaction: the rows
    `store.append` writes (its producer, the current correlation and causation ids, the payload's JSON
    form), without building an Envelope per event."""
    if not items:
        return
    specs = [registry.spec_of(new.payload) for _, new in items]
    now = utc_now()
    await lock_for_append(conn)
    await conn.execute(
        "INSERT INTO events (event_id, event_type, schema_version, stream_id, stream_version, topic,"
        " occurred_at, correlation_id, causation_id, producer, payload)"
        " SELECT e.id, e.type, e.schema, e.stream, 1, e.topic, e.at, %s, %s, %s, e.payload"
        " FROM unnest(%b::uuid[], %b::text[], %b::int[], %b::text[], %b::text[], %b::timestamptz[],"
        " %b::jsonb[]) AS e(id, type, schema, stream, topic, at, payload)",
        (
            current_correlation_id(),
            current_causation_id(),
            store.producer,
            [new.event_id for _, new in items],
            [spec.event_type for spec in specs],
            [spec.version for spec in specs],
            [stream_id for stream_id, _ in items],
            [spec.topic for spec in specs],
            [new.occurred_at or now for _, new in items],
            [new.payload.model_dump_json() for _, new in items],
        ),
    )
