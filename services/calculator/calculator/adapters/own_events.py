"""Calculator's own events and the tables that mirror them (readings, charges, reversals, billed periods).

Every append here writes its rows in the same transaction (an inline projection): rating, validation and
the billing run decide from these tables, so they must never be behind the event store. `project()` is
the one place that maps an event to rows; `rebuild()` replays the whole store through it
(`python -m calculator.worker rebuild-own`).

Streams: `meter-readings:{no}` (ReadingSubmitted and the ChargeCalculated rated from it),
`billing-period:{no}:{period}` (estimated ChargeCalculated, EstimateReversed, PeriodBilled). An
EstimateReversed whose correction id is `adj{n}-{charge_id}` is an adjustment of that charge
(`domain.reconcile`): it goes to `charge_adjustments` and `charges.adjusted`, not to the true-ups.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
from psycopg.errors import UniqueViolation
from pydantic import BaseModel

from calculator.domain.billing import (
    ChargeFacts,
    billing_period_stream,
    meter_readings_stream,
)
from calculator.domain.reconcile import PostedCharge, adjusted_charge_id
from contracts.envelope import Envelope, utc_now
from contracts.events.calculator import ChargeCalculated, EstimateReversed, PeriodBilled, ReadingSubmitted
from contracts.registry import registry
from service_runtime.correlation import current_causation_id, current_correlation_id
from service_runtime.db import Connection
from service_runtime.eventstore import (
    ConcurrencyError,
    EventStore,
    NewEvent,
    lock_for_append,
    row_to_envelope,
)

OWN_TYPES = ("ReadingSubmitted", "ChargeCalculated", "EstimateReversed", "PeriodBilled")


@dataclass(frozen=True, slots=True)
class ReadingRow:
    reading_id: str
    meter_serial: str
    reading_date: dt.date
    value: Decimal
    source: str
    consumption_kwh: Decimal | None
    stream_version: int
    event_id: uuid.UUID


class OwnEvents:
    def __init__(self, store: EventStore, producer: str = "calculator") -> None:
        self.store = store
        self.producer = producer

    # --- appends ----------------------------------------------------------------------------------
    async def append_reading(
        self,
        conn: Connection,
        expected_version: int,
        reading: ReadingSubmitted,
        consumption_kwh: Decimal,
        new_event_id: uuid.UUID,
    ) -> Envelope:
        """Append an accepted reading after `expected_version` (ConcurrencyError if the stream moved)."""
        async with conn.transaction():
            [envelope] = await self.store.append(
                conn,
                meter_readings_stream(reading.account_no),
                expected_version,
                [NewEvent(reading, event_id=new_event_id)],
            )
            await self.project(conn, envelope, consumption_kwh=consumption_kwh)
        return envelope

    async def append_latest(
        self,
        conn: Connection,
        stream_id: str,
        events: Sequence[tuple[BaseModel, uuid.UUID]],
        *,
        version: int | None = None,
    ) -> list[Envelope]:
        """Append at the stream's current version (the caller holds the account's lock; a concurrent
        customer submission on `meter-readings:` can still move it, so re-read and retry). `version`:
        the stream's version as the caller just read it (saves the first query; a wrong one only
        costs a retry)."""
        for _ in range(10):
            if version is None:
                version = await self.store.stream_version(conn, stream_id)
            try:
                async with conn.transaction():
                    envelopes = await self.store.append(
                        conn, stream_id, version, [NewEvent(p, event_id=i) for p, i in events]
                    )
                    for envelope in envelopes:
                        await self.project(conn, envelope)
                return envelopes
            except (ConcurrencyError, UniqueViolation):
                version = None
                continue
        raise ConcurrencyError(stream_id, -1)

    async def bulk_append(
        self, conn: Connection, items: Sequence[tuple[str, Sequence[tuple[BaseModel, uuid.UUID]]]]
    ) -> int:
        """Append to many streams at once, each after its current version (the billing run's batches);
        returns how many events were appended.

        The caller holds the accounts' locks, so no other writer moves these streams meanwhile; should one
        anyway, the (stream, version) key makes the whole batch fail and the run retries it (and a
        repeated event id fails it the same way: exactly once). This is `EventStore.append` for many
        streams in a fixed number of round trips: one query for the streams' versions, one multi-row
        `INSERT ... SELECT FROM unnest(...)` of the events and one per mirror table
        (`_project_billing_rows`), whatever the batch size (see the README: a runtime proposal).

        The append lock serializes every writer of `events` until its commit, so it is taken as late as
        possible: a batch of the billing run's own kinds (`_billing_rows`) writes its mirror tables first
        (they need no event position, only the deterministic event ids), and holds the lock only for the
        versions query and the events' insert. Anything else is projected after the insert, as before.
        """
        if not items:
            return 0
        appended = [(new_id, payload) for _, events in items for payload, new_id in events]
        async with conn.transaction():
            rows = _billing_rows(appended)
            if rows is not None:
                await _project_billing_rows(conn, rows)
            await lock_for_append(conn)  # positions must commit in order for the relay
            count = await self._insert_many(conn, items)
            if rows is None:
                await self._project_each(conn, appended)
            return count

    async def _insert_many(
        self, conn: Connection, items: Sequence[tuple[str, Sequence[tuple[BaseModel, uuid.UUID]]]]
    ) -> int:
        cur = await conn.execute(
            "SELECT stream_id, max(stream_version) FROM events WHERE stream_id = ANY(%s) GROUP BY stream_id",
            ([stream for stream, _ in items],),
        )
        versions = {str(st): int(v) for st, v in await cur.fetchall()}
        correlation_id, causation_id = current_correlation_id(), current_causation_id()
        occurred_at = utc_now()
        ids: list[uuid.UUID] = []
        types: list[str] = []
        schema_versions: list[int] = []
        streams: list[str] = []
        stream_versions: list[int] = []
        topics: list[str] = []
        payloads: list[str] = []
        appended: list[BaseModel] = []
        for stream, events in items:
            version = versions.get(stream, 0)
            for payload, new_id in events:
                version += 1
                spec = registry.spec_of(payload)
                ids.append(new_id)
                types.append(spec.event_type)
                schema_versions.append(spec.version)
                streams.append(stream)
                stream_versions.append(version)
                topics.append(spec.topic)
                payloads.append(payload.model_dump_json())  # stored as jsonb: the same value
                appended.append(payload)
        await conn.execute(
            "INSERT INTO events (event_id, event_type, schema_version, stream_id, stream_version, topic,"
            " payload, occurred_at, correlation_id, causation_id, producer)"
            " SELECT e.*, %s::timestamptz, %s::text, %s::text, %s::text FROM unnest(%b::uuid[], %b::text[],"
            " %b::int[], %b::text[], %b::int[], %b::text[], %b::jsonb[]) AS e",
            (
                occurred_at,
                correlation_id,
                causation_id,
                self.producer,
                ids,
                types,
                schema_versions,
                streams,
                stream_versions,
                topics,
                payloads,
            ),
        )
        return len(appended)

    async def _project_each(self, conn: Connection, appended: Sequence[tuple[uuid.UUID, BaseModel]]) -> None:
        cur = await conn.execute(
            "SELECT event_id, event_type, schema_version, stream_id, stream_version, occurred_at,"
            " correlation_id, causation_id, producer, payload FROM events WHERE event_id = ANY(%s)"
            " ORDER BY position",
            ([new_id for new_id, _ in appended],),
        )
        async with conn.pipeline():
            for row in await cur.fetchall():
                await self.project(conn, row_to_envelope(row))

    async def append_to_period(
        self, conn: Connection, account_no: str, period: str, events: Sequence[tuple[BaseModel, uuid.UUID]]
    ) -> list[Envelope]:
        return await self.append_latest(conn, billing_period_stream(account_no, period), events)

    # --- the inline projection ----------------------------------------------------------------------
    async def project(
        self, conn: Connection, envelope: Envelope, consumption_kwh: Decimal | None = None
    ) -> None:
        t = envelope.event_type
        if t == "ReadingSubmitted":
            r = ReadingSubmitted.model_validate(envelope.payload)
            await conn.execute(
                "INSERT INTO readings (reading_id, account_no, meter_serial, reading_date, value, source,"
                " consumption_kwh, confirmed_implausible, event_id, stream_version, recorded_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (reading_id) DO NOTHING",
                (
                    r.reading_id,
                    r.account_no,
                    r.meter_serial,
                    r.reading_date,
                    r.value,
                    r.source,
                    consumption_kwh,
                    r.confirmed_implausible,
                    envelope.event_id,
                    envelope.stream_version,
                    envelope.occurred_at,
                ),
            )
        elif t == "ChargeCalculated":
            c = ChargeCalculated.model_validate(envelope.payload)
            reading_id = None if c.estimated else c.charge_id.removeprefix("chg-")
            await conn.execute(
                "INSERT INTO charges (charge_id, account_no, period, estimated, reading_id, from_date, to_date,"
                " days, consumption_kwh, tariff_option_applied, net_total, vat, total, event_id)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (charge_id) DO NOTHING",
                _charge_row(envelope.event_id, c),
            )
            if reading_id is not None:
                await conn.execute(
                    "UPDATE readings SET consumption_kwh = %s WHERE reading_id = %s AND consumption_kwh IS NULL",
                    (c.consumption_kwh, reading_id),
                )
        elif t == "EstimateReversed":
            e = EstimateReversed.model_validate(envelope.payload)
            adjusted = adjusted_charge_id(e.correction_id)
            if adjusted is not None:  # an adjustment of a posted charge (domain.reconcile), not a true-up
                cur = await conn.execute(
                    "INSERT INTO charge_adjustments (correction_id, charge_id, account_no, period, amount)"
                    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1",
                    (e.correction_id, adjusted, e.account_no, e.period, e.amount),
                )
                if await cur.fetchone() is not None:
                    await conn.execute(
                        "UPDATE charges SET adjusted = adjusted + %s, adjustments = adjustments + 1"
                        " WHERE charge_id = %s",
                        (e.amount, adjusted),
                    )
                return
            await conn.execute(
                "INSERT INTO estimate_reversals (correction_id, account_no, period, amount, reading_id,"
                " reversed_charge_ids) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (
                    e.correction_id,
                    e.account_no,
                    e.period,
                    e.amount,
                    e.correction_id.removeprefix("rev-"),
                    list(e.reversed_charge_ids),
                ),
            )
            await conn.execute(
                "UPDATE charges SET reversed_by = %s WHERE charge_id = ANY(%s)",
                (e.correction_id, list(e.reversed_charge_ids)),
            )
        elif t == "PeriodBilled":
            b = PeriodBilled.model_validate(envelope.payload)
            await conn.execute(
                "INSERT INTO period_billing (account_no, period, status, charge_ids, updated_at)"
                " VALUES (%s, %s, 'billed', %s, now()) ON CONFLICT (account_no, period) DO UPDATE"
                " SET status = 'billed', charge_ids = excluded.charge_ids, updated_at = now()",
                (b.account_no, b.period, list(b.charge_ids)),
            )

    async def rebuild(self, conn: Connection) -> int:
        """Empty the readings/charges tables and replay the event store through `project()`."""
        async with conn.transaction():
            await conn.execute(
                "TRUNCATE readings, charges, estimate_reversals, charge_adjustments, period_billing"
            )
            cur = await conn.execute(
                "SELECT event_id, event_type, schema_version, stream_id, stream_version, occurred_at,"
                " correlation_id, causation_id, producer, payload, topic FROM events"
                " WHERE event_type = ANY(%s) AND stream_id NOT LIKE 'tariff-catalog' ORDER BY position",
                (list(OWN_TYPES),),
            )
            rows = await cur.fetchall()
            for row in rows:
                envelope = Envelope(
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
                await self.project(conn, self.store.upcast(str(row[10]), envelope))
        return len(rows)


@dataclass(frozen=True, slots=True)
class _BillingRows:
    """A batch's events of the billing run's kinds, grouped for their mirror tables."""

    charges: list[tuple[uuid.UUID, ChargeCalculated]]
    reversals: list[EstimateReversed]
    billed: list[PeriodBilled]


def _billing_rows(appended: Sequence[tuple[uuid.UUID, BaseModel]]) -> _BillingRows | None:
    """The batch grouped for `_project_billing_rows` when it holds only the billing run's kinds
    (ChargeCalculated, true-up EstimateReversed, PeriodBilled); None when it holds anything else (a
    reading, an adjustment): such a batch is projected event by event, in order."""
    charges: list[tuple[uuid.UUID, ChargeCalculated]] = []
    reversals: list[EstimateReversed] = []
    billed: dict[tuple[str, str], PeriodBilled] = {}
    for new_id, payload in appended:
        if isinstance(payload, ChargeCalculated):
            charges.append((new_id, payload))
        elif isinstance(payload, EstimateReversed) and adjusted_charge_id(payload.correction_id) is None:
            reversals.append(payload)
        elif isinstance(payload, PeriodBilled):
            billed[(payload.account_no, payload.period)] = payload  # the last one wins, as in order
        else:
            return None
    return _BillingRows(charges, reversals, list(billed.values()))


async def _project_billing_rows(conn: Connection, rows: _BillingRows) -> None:
    """`OwnEvents.project()` for a batch of the billing run's kinds, set-based: one statement per mirror
    table. The result is the same as projecting the events one by one in order (a test compares it with
    `rebuild()`)."""
    charges, reversals = rows.charges, rows.reversals
    if charges:
        charge_rows = [_charge_row(new_id, c) for new_id, c in charges]
        await conn.execute(
            "INSERT INTO charges (charge_id, account_no, period, estimated, reading_id, from_date, to_date,"
            " days, consumption_kwh, tariff_option_applied, net_total, vat, total, event_id)"
            " SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::bool[], %b::text[], %b::date[],"
            " %b::date[], %b::int[], %b::numeric[], %b::text[], %b::numeric[], %b::numeric[],"
            " %b::numeric[], %b::uuid[]) ON CONFLICT (charge_id) DO NOTHING",
            tuple(list(column) for column in zip(*charge_rows, strict=True)),
        )
        actual = [
            (c.charge_id.removeprefix("chg-"), c.consumption_kwh) for _, c in charges if not c.estimated
        ]
        if actual:
            await conn.execute(
                "UPDATE readings r SET consumption_kwh = u.kwh"
                " FROM unnest(%b::text[], %b::numeric[]) AS u(reading_id, kwh)"
                " WHERE r.reading_id = u.reading_id AND r.consumption_kwh IS NULL",
                ([a for a, _ in actual], [k for _, k in actual]),
            )
    if reversals:
        await conn.execute(
            "INSERT INTO estimate_reversals (correction_id, account_no, period, amount, reading_id,"
            " reversed_charge_ids) SELECT u.correction_id, u.account_no, u.period, u.amount,"
            " u.reading_id, ARRAY(SELECT jsonb_array_elements_text(u.reversed))"
            " FROM unnest(%b::text[], %b::text[], %b::text[], %b::numeric[], %b::text[], %b::jsonb[])"
            " AS u(correction_id, account_no, period, amount, reading_id, reversed)"
            " ON CONFLICT DO NOTHING",
            (
                [e.correction_id for e in reversals],
                [e.account_no for e in reversals],
                [e.period for e in reversals],
                [e.amount for e in reversals],
                [e.correction_id.removeprefix("rev-") for e in reversals],
                [orjson.dumps(list(e.reversed_charge_ids)).decode() for e in reversals],
            ),
        )
        # Each charge is reversed once (by its own true-up); a later reversal in order wins.
        reversed_by = {cid: e.correction_id for e in reversals for cid in e.reversed_charge_ids}
        await conn.execute(
            "UPDATE charges c SET reversed_by = u.correction_id"
            " FROM unnest(%b::text[], %b::text[]) AS u(charge_id, correction_id)"
            " WHERE c.charge_id = u.charge_id",
            (list(reversed_by), list(reversed_by.values())),
        )
    if rows.billed:
        done = rows.billed
        await conn.execute(
            "INSERT INTO period_billing (account_no, period, status, charge_ids, updated_at)"
            " SELECT u.account_no, u.period, 'billed', ARRAY(SELECT jsonb_array_elements_text(u.ids)),"
            " now() FROM unnest(%b::text[], %b::text[], %b::jsonb[]) AS u(account_no, period, ids)"
            " ON CONFLICT (account_no, period) DO UPDATE"
            " SET status = 'billed', charge_ids = excluded.charge_ids, updated_at = now()",
            (
                [b.account_no for b in done],
                [b.period for b in done],
                [orjson.dumps(list(b.charge_ids)).decode() for b in done],
            ),
        )


def _charge_row(new_id: uuid.UUID, c: ChargeCalculated) -> tuple[Any, ...]:
    """A `charges` row of a ChargeCalculated (the same columns `project()` writes)."""
    reading_id = None if c.estimated else c.charge_id.removeprefix("chg-")
    if c.previous is not None and c.current is not None:
        from_date, to_date = c.previous.date, c.current.date
    else:
        from_date, to_date = c.lines[0].from_date, c.lines[-1].to_date
    return (
        c.charge_id,
        c.account_no,
        c.period,
        c.estimated,
        reading_id,
        from_date,
        to_date,
        c.days,
        c.consumption_kwh,
        c.tariff_option_applied,
        c.net_total,
        c.vat,
        c.total,
        new_id,
    )


# --- queries --------------------------------------------------------------------------------------


async def load_readings(conn: Connection, account_no: str) -> list[ReadingRow]:
    """The account's accepted readings in the order they were accepted (= date order)."""
    cur = await conn.execute(
        "SELECT reading_id, meter_serial, reading_date, value, source, consumption_kwh, stream_version, event_id"
        " FROM readings WHERE account_no = %s ORDER BY stream_version",
        (account_no,),
    )
    return [
        ReadingRow(r[0], r[1], r[2], Decimal(r[3]), r[4], None if r[5] is None else Decimal(r[5]), r[6], r[7])
        for r in await cur.fetchall()
    ]


async def load_charges(conn: Connection, account_no: str) -> list[ChargeFacts]:
    cur = await conn.execute(
        "SELECT charge_id, period, estimated, from_date, to_date, days, consumption_kwh, total,"
        " reversed_by IS NOT NULL FROM charges WHERE account_no = %s ORDER BY period, from_date",
        (account_no,),
    )
    return [
        ChargeFacts(r[0], r[1], r[2], r[3], r[4], r[5], Decimal(r[6]), Decimal(r[7]), r[8])
        for r in await cur.fetchall()
    ]


async def load_posted_charges(conn: Connection, account_no: str) -> list[PostedCharge]:
    """The account's charges as posted: totals, the adjustments since, whether reversed (estimates)."""
    cur = await conn.execute(
        "SELECT charge_id, period, estimated, reading_id, from_date, to_date, total, adjusted, adjustments,"
        " reversed_by IS NOT NULL FROM charges WHERE account_no = %s ORDER BY period, from_date, charge_id",
        (account_no,),
    )
    return [
        PostedCharge(r[0], r[1], r[2], r[3], r[4], r[5], Decimal(r[6]), Decimal(r[7]), int(r[8]), r[9])
        for r in await cur.fetchall()
    ]


async def charge_ids_in_period(conn: Connection, account_no: str, period: str) -> list[str]:
    cur = await conn.execute(
        "SELECT charge_id FROM charges WHERE account_no = %s AND period = %s ORDER BY from_date, charge_id",
        (account_no, period),
    )
    return [str(r[0]) for r in await cur.fetchall()]
