"""Rebuild a read model by replaying the ledger's own event store (not Kafka).

`python -m ledger.worker rebuild ledger-periods|ledger-payments` runs one transaction that locks the
read model, empties it and refolds every ledger stream, stream by stream, with the pure domain folds
(`domain.periods.period_table`, `domain.payments.PaymentsView`): an implementation independent of the
incremental projections, so "rebuild equals incremental" is a real check. Rows are written with COPY.

- Memory: one stream's events and a chunk of output rows at a time (a server-side cursor reads the
  events in (stream, version) order), whatever the size of the store.
- A running worker may keep consuming meanwhile: the rebuild holds an exclusive lock on the read model
  until it commits, and the period projection's per-stream versions (written by the rebuild too) make it
  skip what the rebuild already applied. Its Kafka offsets are left as they are.
- `account-links` is built from accounts' events, not from this store: its rebuild is the runtime's
  (emptied now, replayed from `accounts.events.v1` by the worker).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from psycopg_pool import AsyncConnectionPool

from ledger.adapters.codec import EVENT_TYPES, from_stored
from ledger.domain.events import LedgerEvent
from ledger.domain.payments import PaymentsView
from ledger.domain.periods import period_table
from service_runtime.db import Connection

FETCH = 5_000
FLUSH_ROWS = 10_000

_STREAM_EVENTS_SQL = """
SELECT stream_id, stream_version, event_type, schema_version, payload::text
FROM events
WHERE stream_id LIKE 'ledger:%%' AND event_type = ANY(%s)
ORDER BY stream_id, stream_version
"""

_PERIODS_COPY = (
    "COPY ledger_periods (account_no, service_code, period, opening_balance, accrued, corrections, paid,"
    " closing_balance, tariff) FROM STDIN"
)
_STREAMS_COPY = (
    "COPY ledger_period_streams (account_no, service_code, version, first_period, last_period, balance)"
    " FROM STDIN"
)
_PAYMENTS_COPY = (
    "COPY ledger_payments (account_no, service_code, payment_id, paid_on, amount, bank, reversed) FROM STDIN"
)


@dataclass
class RebuildStats:
    projection: str
    events: int = 0
    streams: int = 0
    rows: int = 0
    seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Stream:
    stream_id: str
    account_no: str
    service_code: str
    version: int
    events: list[LedgerEvent]


async def _streams(
    conn: Connection, event_types: Sequence[str], stats: RebuildStats
) -> AsyncIterator[_Stream]:
    """The ledger streams of the store, one at a time, in stream id order (a server-side cursor)."""
    current: _Stream | None = None
    async with conn.cursor(name="ledger_rebuild") as cur:
        await cur.execute(_STREAM_EVENTS_SQL, (list(event_types),))
        while rows := await cur.fetchmany(FETCH):
            for stream_id, version, event_type, schema_version, payload in rows:
                stats.events += 1
                if current is None or current.stream_id != stream_id:
                    if current is not None:
                        yield current
                    _, account_no, service_code = stream_id.split(":", 2)
                    current = _Stream(stream_id, account_no, service_code, 0, [])
                current.version = int(version)
                current.events.append(from_stored(event_type, int(schema_version), orjson.loads(payload)))
    if current is not None:
        yield current


async def _copy(conn: Connection, statement: str, rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    async with conn.cursor() as cur, cur.copy(statement) as copy:
        for row in rows:
            await copy.write_row(row)
    rows.clear()


async def rebuild_periods(conn: Connection) -> RebuildStats:
    """Refold `ledger_periods` and `ledger_period_streams` from the store, in the caller's transaction."""
    stats = RebuildStats("ledger-periods")
    started = time.perf_counter()
    await conn.execute("LOCK TABLE ledger_periods, ledger_period_streams IN ACCESS EXCLUSIVE MODE")
    await conn.execute("TRUNCATE ledger_periods, ledger_period_streams")
    period_rows: list[tuple[Any, ...]] = []
    stream_rows: list[tuple[Any, ...]] = []

    async def flush() -> None:
        await _copy(conn, _PERIODS_COPY, period_rows)
        await _copy(conn, _STREAMS_COPY, stream_rows)

    async for stream in _streams(conn, sorted(EVENT_TYPES), stats):
        table = period_table(stream.events)
        stats.streams += 1
        if not table:
            continue
        for row in table:
            period_rows.append(
                (stream.account_no, stream.service_code, str(row.period), row.opening_balance, row.accrued,
                 row.corrections, row.paid, row.closing_balance, row.tariff)
            )  # fmt: skip
        stream_rows.append(
            (stream.account_no, stream.service_code, stream.version, str(table[0].period),
             str(table[-1].period), table[-1].closing_balance)
        )  # fmt: skip
        stats.rows += len(table)
        if len(period_rows) >= FLUSH_ROWS:
            # The server-side cursor stays open between fetches; COPY uses the connection in between.
            await flush()
    await flush()
    stats.seconds = time.perf_counter() - started
    return stats


async def rebuild_payments(conn: Connection) -> RebuildStats:
    """Refold `ledger_payments` from the store, in the caller's transaction."""
    stats = RebuildStats("ledger-payments")
    started = time.perf_counter()
    await conn.execute("LOCK TABLE ledger_payments IN ACCESS EXCLUSIVE MODE")
    await conn.execute("TRUNCATE ledger_payments")
    rows: list[tuple[Any, ...]] = []
    async for stream in _streams(conn, ["PaymentReceived", "PaymentReversed"], stats):
        stats.streams += 1
        for line in PaymentsView.from_events(stream.events).lines():
            rows.append(
                (stream.account_no, stream.service_code, line.payment_id, line.paid_on, line.amount, line.bank,
                 line.reversed)
            )  # fmt: skip
            stats.rows += 1
        if len(rows) >= FLUSH_ROWS:
            await _copy(conn, _PAYMENTS_COPY, rows)
    await _copy(conn, _PAYMENTS_COPY, rows)
    stats.seconds = time.perf_counter() - started
    return stats


REBUILDERS: dict[str, Callable[[Connection], Any]] = {
    "ledger-periods": rebuild_periods,
    "ledger-payments": rebuild_payments,
}


async def rebuild_from_store(pool: AsyncConnectionPool[Connection], name: str) -> RebuildStats:
    rebuild = REBUILDERS[name]
    async with pool.connection() as conn, conn.transaction():
        stats: RebuildStats = await rebuild(conn)
    return stats


async def verify_read_models(conn: Connection, *, limit: int = 20) -> list[str]:
    """Where the read models differ from the folds of the event store (empty: they agree).

    The same independent folds as the rebuild (`period_table`, `PaymentsView`), compared row by row
    with `ledger_periods`, `ledger_period_streams` and `ledger_payments`, without writing anything (call
    it in a transaction; the expected rows are held in memory, so it is meant for tests and audits of
    a store of moderate size). At most `limit` differences are listed."""
    stats = RebuildStats("verify")
    periods: dict[tuple[str, ...], tuple[Any, ...]] = {}
    streams: dict[tuple[str, ...], tuple[Any, ...]] = {}
    payments: dict[tuple[str, ...], tuple[Any, ...]] = {}
    async for stream in _streams(conn, sorted(EVENT_TYPES), stats):
        a, s = stream.account_no, stream.service_code
        table = period_table(stream.events)
        for row in table:
            periods[(a, s, str(row.period))] = (
                row.opening_balance, row.accrued, row.corrections, row.paid, row.closing_balance, row.tariff
            )  # fmt: skip
        if table:
            streams[(a, s)] = (
                stream.version,
                str(table[0].period),
                str(table[-1].period),
                table[-1].closing_balance,
            )
        for line in PaymentsView.from_events(stream.events).lines():
            payments[(a, s, line.payment_id)] = (line.paid_on, line.amount, line.bank, line.reversed)
    stored: dict[str, dict[tuple[str, ...], tuple[Any, ...]]] = {}
    for name, query, width in (
        ("ledger_periods", "SELECT account_no, service_code, period, opening_balance, accrued, corrections,"
         " paid, closing_balance, tariff FROM ledger_periods", 3),
        ("ledger_period_streams", "SELECT account_no, service_code, version, first_period, last_period, balance"
         " FROM ledger_period_streams", 2),
        ("ledger_payments", "SELECT account_no, service_code, payment_id, paid_on, amount, bank, reversed"
         " FROM ledger_payments", 3),
    ):  # fmt: skip
        cur = await conn.execute(query)
        stored[name] = {tuple(row[:width]): tuple(row[width:]) for row in await cur.fetchall()}
    differences: list[str] = []
    for name, expected in (
        ("ledger_periods", periods),
        ("ledger_period_streams", streams),
        ("ledger_payments", payments),
    ):
        actual = stored[name]
        for key in sorted(expected.keys() | actual.keys()):
            want, got = expected.get(key), actual.get(key)
            if want != got:
                differences.append(f"{name} {'/'.join(map(str, key))}: event store {want}, read model {got}")
    return differences[:limit]
