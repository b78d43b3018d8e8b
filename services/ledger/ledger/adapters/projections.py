"""Read models of the ledger's canonical events (`ledger.events.v1`), and the links used to authorize.

Each projection writes a whole batch with a few set-based statements, in the runner's transaction, with
array parameters in binary and money as integer tiyn (`tiyn / 100.0` is exact in numeric):

- `ledger-periods` → `ledger_periods` (one row per account, service and Almaty month: opening balance,
  accrued, corrections, paid, closing balance, tariff) and `ledger_period_streams` (per stream: the
  last applied version, the range of months and the current balance). A batch loads the stored rows of
  the streams it touches, re-rolls them with `domain.sheet.PeriodSheet` (a late event for a past month
  re-rolls every later month) and upserts the rows that changed. Memory is bounded by the batch, not by
  the number of streams. The per-stream version makes the projection idempotent on its own, also
  against a rebuild running at the same moment (its heads are locked `FOR UPDATE`).
- `ledger-payments` → `ledger_payments` (payment id, date, amount, bank, reversed). Idempotent by
  construction (insert-if-absent, then flag reversals).
- `ledger-read-models`: the worker's one consumer that feeds both of the above (each event is fetched
  and parsed once).
- `account-links` → `ledger_account_links` from accounts' AccountLinked / AccountUnlinked: who may see
  which account (404 otherwise).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import BaseModel

from contracts.events import accounts as acc
from contracts.events import ledger as contract
from contracts.money import to_tiyn
from ledger.adapters.codec import EVENT_TYPES, movement_of
from ledger.adapters.sqlarrays import literal
from ledger.domain.period import parse_period
from ledger.domain.periods import PeriodRow
from ledger.domain.sheet import Movement, PeriodSheet, TiynRow
from service_runtime.consumers import CanonicalEvent, Projection
from service_runtime.db import Connection

log = logging.getLogger(__name__)

StreamKey = tuple[str, str]  # (account_no, service_code)

_PERIOD_COLUMNS = (
    "account_no, service_code, period, opening_balance, accrued, corrections, paid, closing_balance, tariff"
)
_HEADS_SQL = """
SELECT s.account_no, s.service_code, s.version
FROM ledger_period_streams AS s
JOIN unnest(%s::text[], %s::text[]) AS k(account_no, service_code) USING (account_no, service_code)
FOR UPDATE OF s
"""
# A re-roll needs the stream's first row (its opening balance), its last row, and the rows from the
# earliest month the batch touches (`since`); not the months before (see domain.sheet.PeriodSheet).
_ROWS_SQL = """
SELECT p.account_no, p.service_code, p.period, (p.opening_balance * 100)::int8, (p.accrued * 100)::int8,
       (p.corrections * 100)::int8, (p.paid * 100)::int8, (p.closing_balance * 100)::int8, p.tariff
FROM unnest(%s::text[], %s::text[], %s::text[]) AS k(account_no, service_code, since)
JOIN ledger_period_streams AS s ON s.account_no = k.account_no AND s.service_code = k.service_code
JOIN ledger_periods AS p ON p.account_no = k.account_no AND p.service_code = k.service_code
 AND (p.period >= k.since OR p.period = s.first_period OR p.period = s.last_period)
"""
UPSERT_PERIODS_SQL = f"""
INSERT INTO ledger_periods ({_PERIOD_COLUMNS})
SELECT a, s, p, o / 100.0, ac / 100.0, c / 100.0, pd / 100.0, cl / 100.0, t
FROM unnest(%s::text[], %s::text[], %s::text[], %s::int8[], %s::int8[], %s::int8[], %s::int8[], %s::int8[],
            %b::text[]) AS k(a, s, p, o, ac, c, pd, cl, t)
ON CONFLICT (account_no, service_code, period) DO UPDATE SET
    opening_balance = excluded.opening_balance, accrued = excluded.accrued,
    corrections = excluded.corrections, paid = excluded.paid,
    closing_balance = excluded.closing_balance, tariff = excluded.tariff
"""  # noqa: S608 (constant)
UPSERT_STREAMS_SQL = """
INSERT INTO ledger_period_streams (account_no, service_code, version, first_period, last_period, balance)
SELECT a, s, v, f, l, b / 100.0
FROM unnest(%s::text[], %s::text[], %s::int[], %s::text[], %s::text[], %s::int8[]) AS k(a, s, v, f, l, b)
ON CONFLICT (account_no, service_code) DO UPDATE SET
    version = excluded.version, first_period = excluded.first_period, last_period = excluded.last_period,
    balance = excluded.balance, updated_at = now()
"""


def period_row(record: Sequence[Any]) -> PeriodRow:
    """A stored `ledger_periods` row (after account_no, service_code) as the domain's PeriodRow."""
    period, opening, accrued, corrections, paid, closing, tariff = record
    return PeriodRow(parse_period(period), opening, accrued, corrections, paid, closing, tariff)


def period_columns(rows: Sequence[tuple[StreamKey, TiynRow]]) -> tuple[Any, ...]:
    """Column arrays for UPSERT_PERIODS_SQL (account numbers, service codes, months and amounts need no
    quoting: sent as literals; tariffs are free text)."""
    return (
        literal(key[0] for key, _ in rows),
        literal(key[1] for key, _ in rows),
        literal(row.period for _, row in rows),
        literal(row.opening for _, row in rows),
        literal(row.accrued for _, row in rows),
        literal(row.corrections for _, row in rows),
        literal(row.paid for _, row in rows),
        literal(row.closing for _, row in rows),
        [row.tariff for _, row in rows],
    )


def stream_columns(streams: Sequence[tuple[StreamKey, int, PeriodSheet]]) -> tuple[Any, ...]:
    """Column arrays for UPSERT_STREAMS_SQL."""
    return (
        literal(key[0] for key, _, _ in streams),
        literal(key[1] for key, _, _ in streams),
        literal(version for _, version, _ in streams),
        literal(sheet.first_period for _, _, sheet in streams),
        literal(sheet.last_period for _, _, sheet in streams),
        literal(sheet.balance for _, _, sheet in streams),
    )


Appended = tuple[str, str, int, BaseModel]  # account_no, service_code, stream version, canonical payload


async def project_periods(conn: Connection, events: Sequence[Appended]) -> None:
    """Apply canonical ledger events (in stream version order per stream) to `ledger_periods` and
    `ledger_period_streams`: one pipelined read of the touched streams' heads and rows, then two
    multi-row upserts. Events at or below a stream's applied version are skipped (idempotent).

    Used by the Kafka consumer (`LedgerPeriodsProjection`) and, inline, by the write side in the
    transaction that appends the events (`adapters.streams.PgLedgerStore`)."""
    if not events:
        return
    batch: dict[StreamKey, list[tuple[int, Movement]]] = {}
    for account_no, service_code, version, payload in events:
        batch.setdefault((account_no, service_code), []).append((version, movement_of(payload)))
    accounts = [k[0] for k in batch]
    services = [k[1] for k in batch]
    since = [
        "0000-00"  # an opening balance rolls through every row
        if any(m.opening is not None for _, m in items)
        else str(min(m.period for _, m in items))
        for items in batch.values()
    ]
    async with conn.pipeline():
        heads_cur = await conn.execute(_HEADS_SQL, (literal(accounts), literal(services)))
        rows_cur = await conn.execute(_ROWS_SQL, (literal(accounts), literal(services), literal(since)))
    heads = {(a, s): int(v) for a, s, v in await heads_cur.fetchall()}
    stored: dict[StreamKey, list[TiynRow]] = {}
    for a, s, period, opening, accrued, corrections, paid, closing, tariff in await rows_cur.fetchall():
        row = TiynRow(parse_period(period), opening, accrued, corrections, paid, closing, tariff)
        stored.setdefault((a, s), []).append(row)

    changed: list[tuple[StreamKey, TiynRow]] = []
    streams: list[tuple[StreamKey, int, PeriodSheet]] = []
    for key, items in batch.items():
        head = applied = heads.get(key, 0)
        sheet = PeriodSheet.partial(stored.get(key, ()))
        for version, movement in items:
            if version <= applied:
                continue  # applied before (a redelivery, or a rebuild got there first)
            if version != applied + 1:
                log.warning(
                    "ledger stream version gap",
                    extra={"stream": f"{key[0]}:{key[1]}", "after": applied, "got": version},
                )
            sheet.apply(movement)
            applied = version
        if applied == head:
            continue
        changed += [(key, row) for row in sheet.changed()]
        streams.append((key, applied, sheet))
    if not streams:
        return
    async with conn.cursor() as cur:
        if changed:
            await cur.execute(UPSERT_PERIODS_SQL, period_columns(changed))
        await cur.execute(UPSERT_STREAMS_SQL, stream_columns(streams))


async def project_payments(conn: Connection, payloads: Sequence[BaseModel]) -> None:
    """Apply canonical PaymentReceived / PaymentReversed payloads (others are ignored) to
    `ledger_payments`: insert-if-absent, then flag reversals (idempotent by construction)."""
    received: list[contract.PaymentReceived] = []
    reversed_: list[contract.PaymentReversed] = []
    for payload in payloads:
        if isinstance(payload, contract.PaymentReceived):
            received.append(payload)
        elif isinstance(payload, contract.PaymentReversed):
            reversed_.append(payload)
    async with conn.cursor() as cur:
        if received:  # first: a reversal in the same batch follows its payment
            await cur.execute(
                INSERT_PAYMENTS_SQL,
                (
                    literal(p.account_no for p in received),
                    literal(p.service_code for p in received),
                    [p.payment_id for p in received],  # free text
                    literal(p.paid_on for p in received),
                    literal(to_tiyn(p.amount) for p in received),
                    [p.bank for p in received],
                ),
            )
        if reversed_:
            await cur.execute(
                _REVERSE_PAYMENTS_SQL,
                (
                    literal(p.account_no for p in reversed_),
                    literal(p.service_code for p in reversed_),
                    [p.payment_id for p in reversed_],
                ),
            )


async def project_inline(conn: Connection, events: Sequence[Appended]) -> None:
    """Both read models of the ledger's own events, in the transaction that appends them."""
    await project_periods(conn, events)
    await project_payments(conn, [payload for *_, payload in events])


class LedgerPeriodsProjection(Projection):
    name: ClassVar[str] = "ledger-periods"
    topics: ClassVar[tuple[str, ...]] = (contract.TOPIC,)
    handles: ClassVar[frozenset[str]] = EVENT_TYPES

    def __init__(self, *, topics: tuple[str, ...] | None = None) -> None:
        if topics is not None:
            self.topics = topics  # type: ignore[misc]

    async def apply(self, conn: Connection, event: CanonicalEvent) -> None:
        await self.apply_batch(conn, [event])

    async def apply_batch(self, conn: Connection, events: Sequence[CanonicalEvent]) -> None:
        await project_periods(
            conn,
            [
                (e.payload.account_no, e.payload.service_code, e.envelope.stream_version, e.payload)
                for e in events
            ],
        )

    async def reset(self, conn: Connection) -> None:
        await conn.execute("TRUNCATE ledger_periods, ledger_period_streams")


INSERT_PAYMENTS_SQL = """
INSERT INTO ledger_payments (account_no, service_code, payment_id, paid_on, amount, bank)
SELECT a, s, p, d, t / 100.0, b
FROM unnest(%s::text[], %s::text[], %b::text[], %s::date[], %s::int8[], %b::text[]) AS k(a, s, p, d, t, b)
ON CONFLICT (account_no, service_code, payment_id) DO NOTHING
"""
_REVERSE_PAYMENTS_SQL = """
UPDATE ledger_payments AS p SET reversed = true
FROM unnest(%s::text[], %s::text[], %b::text[]) AS r(account_no, service_code, payment_id)
WHERE p.account_no = r.account_no AND p.service_code = r.service_code AND p.payment_id = r.payment_id
"""


class LedgerPaymentsProjection(Projection):
    name: ClassVar[str] = "ledger-payments"
    topics: ClassVar[tuple[str, ...]] = (contract.TOPIC,)
    handles: ClassVar[frozenset[str]] = frozenset({"PaymentReceived", "PaymentReversed"})

    def __init__(self, *, topics: tuple[str, ...] | None = None) -> None:
        if topics is not None:
            self.topics = topics  # type: ignore[misc]

    async def apply(self, conn: Connection, event: CanonicalEvent) -> None:
        await self.apply_batch(conn, [event])

    async def apply_batch(self, conn: Connection, events: Sequence[CanonicalEvent]) -> None:
        await project_payments(conn, [event.payload for event in events])

    async def reset(self, conn: Connection) -> None:
        await conn.execute("TRUNCATE ledger_payments")


class AccountLinksProjection(Projection):
    """Which users linked which accounts (accounts' AccountLinked / AccountUnlinked)."""

    name: ClassVar[str] = "account-links"
    topics: ClassVar[tuple[str, ...]] = (acc.TOPIC,)
    handles: ClassVar[frozenset[str]] = frozenset({"AccountLinked", "AccountUnlinked"})

    def __init__(self, *, topics: tuple[str, ...] | None = None) -> None:
        if topics is not None:
            self.topics = topics  # type: ignore[misc]

    async def apply(self, conn: Connection, event: CanonicalEvent) -> None:
        await self.apply_batch(conn, [event])

    async def apply_batch(self, conn: Connection, events: Sequence[CanonicalEvent]) -> None:
        final: dict[tuple[str, Any], bool] = {}  # (account_no, user_id) → linked, the batch's last word
        for event in events:
            payload = event.payload
            if isinstance(payload, acc.AccountLinked | acc.AccountUnlinked):
                final[(payload.account_no, payload.user_id)] = isinstance(payload, acc.AccountLinked)
        linked = [k for k, v in final.items() if v]
        unlinked = [k for k, v in final.items() if not v]
        async with conn.cursor() as cur:
            if linked:
                await cur.execute(
                    "INSERT INTO ledger_account_links (account_no, user_id)"
                    " SELECT * FROM unnest(%b::text[], %b::uuid[]) ON CONFLICT DO NOTHING",
                    ([a for a, _ in linked], [u for _, u in linked]),
                )
            if unlinked:
                await cur.execute(
                    "DELETE FROM ledger_account_links AS l USING unnest(%b::text[], %b::uuid[]) AS u(a, uid)"
                    " WHERE l.account_no = u.a AND l.user_id = u.uid",
                    ([a for a, _ in unlinked], [u for _, u in unlinked]),
                )

    async def reset(self, conn: Connection) -> None:
        await conn.execute("TRUNCATE ledger_account_links")


class LedgerReadModels(Projection):
    """Both read models of ledger.events.v1 from one consumer, in one transaction per batch.

    `ledger-periods` and `ledger-payments` are separate projections (and rebuild separately from the
    event store), but the worker feeds them from one consumer: each canonical event is fetched and
    parsed once instead of twice, the larger part of a projection's cost."""

    name: ClassVar[str] = "ledger-read-models"
    topics: ClassVar[tuple[str, ...]] = (contract.TOPIC,)
    handles: ClassVar[frozenset[str]] = EVENT_TYPES

    def __init__(self, *, topics: tuple[str, ...] | None = None) -> None:
        if topics is not None:
            self.topics = topics  # type: ignore[misc]
        self.periods = LedgerPeriodsProjection(topics=topics)
        self.payments = LedgerPaymentsProjection(topics=topics)

    async def apply(self, conn: Connection, event: CanonicalEvent) -> None:
        await self.apply_batch(conn, [event])

    async def apply_batch(self, conn: Connection, events: Sequence[CanonicalEvent]) -> None:
        await self.periods.apply_batch(conn, events)
        await self.payments.apply_batch(
            conn, [e for e in events if e.envelope.event_type in LedgerPaymentsProjection.handles]
        )

    async def reset(self, conn: Connection) -> None:
        await self.periods.reset(conn)
        await self.payments.reset(conn)
