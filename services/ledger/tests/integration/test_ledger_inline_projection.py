"""The inline read models: the inputs write `ledger_periods`, `ledger_period_streams` and
`ledger_payments` in the transaction that appends the events, so after every committed batch the read
models must equal the folds of the event store (`adapters.rebuild.verify_read_models`, the rebuild's
independent folds), not only eventually.

The handlers are driven directly on a fresh database (no Kafka, no runner): random batches of
payments, redeliveries of a bank payment under new event ids, cancellations (also before their
payment), late corrections for old months, charges, and openings that come after the facts parked for
them. Both write paths are covered: a whole batch (`handle_batch` / `apply_batch`, the buffered
`BatchLedgerStore`) and one message at a time (`handle` / `apply`, `PgLedgerStore`, as the runner
does after a dead letter).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from pydantic import BaseModel

from contracts import backoffice as bo
from contracts.envelope import Envelope, IngressEnvelope
from contracts.events import accounts as acc
from contracts.events import calculator as calc
from ledger.adapters.dead_letters import DeadLetterSender
from ledger.adapters.ingress import BackofficeIngress, UpstreamIngress
from ledger.adapters.rebuild import rebuild_from_store, verify_read_models
from ledger.adapters.streams import AggregateCache, StoreConfig
from ledger.settings import MIGRATIONS_DIR
from service_runtime.consumers import CanonicalEvent, IngressMessage
from service_runtime.db import Connection, open_pool
from service_runtime.migrations import migrate_to_head

Item = IngressMessage | CanonicalEvent


class Scenario:
    """Messages as the runner would hand them over (parsed), for a few fresh accounts."""

    def __init__(self, rng: random.Random, accounts: int) -> None:
        self.rng = rng
        self.accounts = [str(rng.randint(10**11, 10**12 - 1)) for _ in range(accounts)]
        self.opened: set[str] = set()
        self.payments: list[tuple[str, bo.PaymentReported]] = []  # (account, payment), as sent
        self.cancelled: set[str] = set()
        self._offset = 0
        self._versions: dict[str, int] = {}
        self.before_opening = 0  # messages for an account not opened yet: parked until it opens
        self.sent: list[IngressMessage] = []  # every back-office message, for redeliveries as they were

    def _next_offset(self) -> int:
        self._offset += 1
        return self._offset

    def backoffice(self, topic: str, event_type: str, payload: BaseModel, account_no: str) -> IngressMessage:
        envelope = IngressEnvelope(
            event_id=uuid.uuid4(),
            event_type=event_type,
            schema_version=1,
            occurred_at=datetime.now(UTC),
            producer="backoffice",
            payload=payload.model_dump(mode="json"),
        )
        message = IngressMessage(envelope, payload, account_no, topic, 0, self._next_offset())
        self.sent.append(message)
        return message

    def canonical(self, topic: str, stream_id: str, payload: BaseModel) -> CanonicalEvent:
        version = self._versions[stream_id] = self._versions.get(stream_id, 0) + 1
        envelope = Envelope(
            event_type=type(payload).__name__,
            schema_version=1,
            stream_id=stream_id,
            stream_version=version,
            producer="upstream",
            payload=payload.model_dump(mode="json"),
        )
        return CanonicalEvent(envelope, payload, topic, 0, self._next_offset())

    def opening(self, account_no: str) -> CanonicalEvent:
        self.opened.add(account_no)
        opened = acc.AccountOpened(
            account_no=account_no,
            payer_name="Иванов Иван Иванович",
            address="г. Алматы, ул. Абая, 1",
            residents=2,
            electric_stove=False,
            living_alone=False,
            tariff_option="flat",
            district_office_code="ROES-1",
            opened_on=date(2024, 1, 1) + timedelta(days=self.rng.randint(0, 200)),
            opening_balance=Decimal(self.rng.randint(-50_000, 50_000)) / 100,
        )
        return self.canonical(acc.TOPIC, acc.account_stream(account_no), opened)

    def charge(self, account_no: str) -> CanonicalEvent:
        period = f"2024-{self.rng.randint(1, 12):02d}"
        total = Decimal(self.rng.randint(0, 3_000_000)) / 100
        first = date.fromisoformat(f"{period}-01")
        line = calc.ChargeLine(
            from_date=first, to_date=first.replace(day=28), tier="flat", limit_kwh=None,
            kwh=Decimal("100.00"), rate=Decimal("31.85"), amount=total,
        )  # fmt: skip
        charge = calc.ChargeCalculated(
            charge_id=f"CH-{uuid.uuid4().hex[:10]}", account_no=account_no, period=period, previous=None,
            current=None, days=27, consumption_kwh=Decimal("100.00"), tariff_option_applied="flat",
            lines=[line], net_total=total, vat=Decimal("0.00"), total=total,
        )  # fmt: skip
        return self.canonical(calc.TOPIC, f"meter-readings:{account_no}", charge)

    def payment(self, account_no: str) -> IngressMessage:
        payment = bo.PaymentReported(
            payment_id=f"P-{uuid.uuid4().hex[:12]}",
            account_no=account_no,
            amount=Decimal(self.rng.randint(1, 5_000_000)) / 100,
            paid_on=date(2024, 1, 1) + timedelta(days=self.rng.randint(0, 600)),
            bank=self.rng.choice(["Halyk Bank", "Kaspi Bank"]),
        )
        self.payments.append((account_no, payment))
        return self.backoffice(bo.PAYMENTS, "PaymentReported", payment, account_no)

    def redelivery(self) -> IngressMessage:
        """A message sent before, again: a payment under a new event id (the bank re-reported it), or
        any message as it was (Kafka redelivered it, the same event id). Changes nothing."""
        if self.rng.random() < 0.5:
            return self.rng.choice(self.sent)
        account_no, payment = self.rng.choice(self.payments)
        return self.backoffice(bo.PAYMENTS, "PaymentReported", payment, account_no)

    def cancellation(self, account_no: str, payment_id: str) -> IngressMessage:
        self.cancelled.add(payment_id)
        cancelled = bo.PaymentCancelled(payment_id=payment_id, account_no=account_no, reason="Отозван банком")
        return self.backoffice(bo.PAYMENTS, "PaymentCancelled", cancelled, account_no)

    def correction(self, account_no: str) -> IngressMessage:
        correction = bo.CorrectionIssued(
            correction_id=f"C-{uuid.uuid4().hex[:10]}",
            account_no=account_no,
            service_code="electricity",
            period=f"{self.rng.choice([2024, 2025])}-{self.rng.randint(1, 12):02d}",  # late ones too
            amount=Decimal(self.rng.randint(-500_000, 500_000)) / 100,
            reason="Перерасчёт",
        )
        return self.backoffice(bo.BILLING, "CorrectionIssued", correction, account_no)

    def batch(self, size: int) -> list[Item]:
        items: list[Item] = []
        for _ in range(size):
            account_no = self.rng.choice(self.accounts)
            roll = self.rng.random()
            self.before_opening += account_no not in self.opened
            if roll < 0.06 and account_no not in self.opened:
                items.append(self.opening(account_no))
            elif roll < 0.50 or not self.payments:
                items.append(self.payment(account_no))
            elif roll < 0.60:
                items.append(self.redelivery())
            elif roll < 0.70:
                owner, payment = self.rng.choice(self.payments)
                items.append(self.cancellation(owner, payment.payment_id))
            elif roll < 0.75:  # a cancellation before its payment: parked until the payment comes
                early = self.payment(account_no)
                items.append(self.cancellation(account_no, early.payload.payment_id))
                items.append(early)
            elif roll < 0.90:
                items.append(self.correction(account_no))
            else:
                items.append(self.charge(account_no))
        return items

    def openings_left(self) -> list[Item]:
        return [self.opening(a) for a in self.accounts if a not in self.opened]


def runs_of_one_kind(items: list[Item]) -> list[list[Item]]:
    """Consecutive items of one input (back-office messages, canonical events) grouped, in order."""
    runs: list[list[Item]] = []
    for item in items:
        if runs and type(runs[-1][0]) is type(item):
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


async def apply(
    conn: Connection,
    backoffice: BackofficeIngress,
    upstream: UpstreamIngress,
    items: list[Item],
    one_by_one: bool,
) -> None:
    """Hand the items over in runs of one kind, as the two consumers would, all in one transaction."""
    async with conn.transaction():
        for run in runs_of_one_kind(items):
            if isinstance(run[0], IngressMessage):
                messages = [m for m in run if isinstance(m, IngressMessage)]
                if one_by_one:
                    for message in messages:
                        await backoffice.handle(conn, message)
                else:
                    await backoffice.handle_batch(conn, messages)
            else:
                events = [e for e in run if isinstance(e, CanonicalEvent)]
                if one_by_one:
                    for event in events:
                        await upstream.apply(conn, event)
                else:
                    await upstream.apply_batch(conn, events)


async def differences(conn: Connection) -> list[str]:
    async with conn.transaction():
        return await verify_read_models(conn)


@pytest.mark.parametrize("seed", [11, 12])
async def test_inline_read_models_equal_the_event_store_after_every_batch(
    stack_env: dict[str, str], make_database: Callable[[], str], kafka_bootstrap: str, seed: int
) -> None:
    dsn = make_database()
    migrate_to_head(MIGRATIONS_DIR, dsn)
    config = StoreConfig(topic="ledger.events.v1")
    cache = AggregateCache(200)  # small: evictions and reloads happen too
    dead_letters = DeadLetterSender(kafka_bootstrap, "ledger-test.inline")
    backoffice = BackofficeIngress(config, dead_letters, cache=cache)
    upstream = UpstreamIngress(config, dead_letters, cache=cache)
    rng = random.Random(seed)
    scenario = Scenario(rng, accounts=6)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for i in range(12):
            await apply(conn, backoffice, upstream, scenario.batch(rng.randint(1, 60)), one_by_one=i % 4 == 3)
            assert await differences(conn) == [], f"after batch {i}"
        await apply(conn, backoffice, upstream, scenario.openings_left(), one_by_one=False)
        assert await differences(conn) == []
        # Both inputs used the cache they were given (an empty one too), within its bound.
        assert cache.evictions > 0 and cache.events > 0 and (cache.events <= 200 or len(cache) == 1)

        # Everything parked was applied once its account opened: the totals are the inputs', exactly.
        cur = await conn.execute("SELECT count(*) FROM ledger_parked WHERE waiting_for = 'account'")
        assert await cur.fetchone() == (0,)
        counted = {p.payment_id: p for _, p in scenario.payments}
        cur = await conn.execute("SELECT payment_id, amount, reversed FROM ledger_payments")
        stored = {row[0]: (row[1], row[2]) for row in await cur.fetchall()}
        assert stored == {pid: (p.amount, pid in scenario.cancelled) for pid, p in counted.items()}
        cur = await conn.execute(
            "SELECT coalesce(sum(paid), 0) FROM ledger_periods WHERE account_no = ANY(%s)",
            (scenario.accounts,),
        )
        row = await cur.fetchone()
        assert row is not None
        assert row[0] == sum(
            (p.amount for pid, p in counted.items() if pid not in scenario.cancelled), Decimal(0)
        )
        # The scenario went through every path: parked facts, reversals, late corrections, charges.
        assert scenario.before_opening > 10
        cur = await conn.execute("SELECT event_type, count(*) FROM events GROUP BY 1")
        kinds = dict(await cur.fetchall())
        assert {k: kinds.get(k, 0) > 0 for k in ("PaymentReversed", "CorrectionPosted", "AccrualPosted")} == {
            "PaymentReversed": True,
            "CorrectionPosted": True,
            "AccrualPosted": True,
        }
        # Each stream's read model is at the stream's version: never behind, never ahead.
        cur = await conn.execute(
            "SELECT s.stream_id FROM ledger_streams AS s LEFT JOIN ledger_period_streams AS p"
            " USING (account_no, service_code) WHERE p.version IS DISTINCT FROM s.version"
        )
        assert await cur.fetchall() == []

    # And the rebuild from the store gives the same rows.
    pool = await open_pool(dsn, max_size=1)
    try:
        async with pool.connection() as conn:
            before = await _snapshot(conn)
        for name in ("ledger-periods", "ledger-payments"):
            await rebuild_from_store(pool, name)
        async with pool.connection() as conn:
            assert await _snapshot(conn) == before
    finally:
        await pool.close()


async def _snapshot(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    snapshot = {}
    for table, order in (("ledger_periods", "1, 2, 3"), ("ledger_payments", "1, 2, 3")):
        cur = await conn.execute(f"SELECT * FROM {table} ORDER BY {order}")
        snapshot[table] = await cur.fetchall()
    cur = await conn.execute(
        "SELECT account_no, service_code, version, first_period, last_period, balance FROM ledger_period_streams"
        " ORDER BY 1, 2"
    )
    snapshot["ledger_period_streams"] = await cur.fetchall()
    return snapshot


async def test_the_check_finds_a_read_model_that_differs_from_the_event_store(
    stack_env: dict[str, str], make_database: Callable[[], str], kafka_bootstrap: str
) -> None:
    """`verify_read_models` is not vacuous: a projection that skipped or changed something is caught,
    and so is the ledger running with the inline read models off (the read models then lag the store
    until a consumer of the ledger's topic catches up)."""
    dsn = make_database()
    migrate_to_head(MIGRATIONS_DIR, dsn)
    dead_letters = DeadLetterSender(kafka_bootstrap, "ledger-test.inline")
    rng = random.Random(3)
    scenario = Scenario(rng, accounts=2)
    inline = StoreConfig(topic="ledger.events.v1")
    cache = AggregateCache(1000)
    backoffice = BackofficeIngress(inline, dead_letters, cache=cache)
    upstream = UpstreamIngress(inline, dead_letters, cache=cache)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        items: list[Item] = [scenario.opening(a) for a in scenario.accounts]
        items += [scenario.payment(a) for a in scenario.accounts for _ in range(3)]
        await apply(conn, backoffice, upstream, items, one_by_one=False)
        assert await differences(conn) == []

        await conn.execute("UPDATE ledger_periods SET paid = paid + 0.01, closing_balance = closing_balance - 0.01"
                           " WHERE ctid = (SELECT ctid FROM ledger_periods WHERE paid > 0 LIMIT 1)")  # fmt: skip
        found = await differences(conn)
        assert len(found) == 1 and found[0].startswith("ledger_periods ")
        await rebuild_from_store_on(dsn)
        assert await differences(conn) == []

        off = StoreConfig(topic="ledger.events.v1", inline_read_models=False)
        lagging = BackofficeIngress(off, dead_letters, cache=AggregateCache(1000))
        account_no = scenario.accounts[0]
        await apply(conn, lagging, upstream, [scenario.payment(account_no)], one_by_one=False)
        found = await differences(conn)
        assert any(line.startswith("ledger_payments ") for line in found)
        assert any(line.startswith(f"ledger_period_streams {account_no}/electricity") for line in found)


async def rebuild_from_store_on(dsn: str) -> None:
    pool = await open_pool(dsn, max_size=1)
    try:
        for name in ("ledger-periods", "ledger-payments"):
            await rebuild_from_store(pool, name)
    finally:
        await pool.close()


class _RolledBack(Exception):
    pass


@pytest.mark.parametrize("one_by_one", [False, True])
async def test_cached_aggregates_ahead_of_or_behind_the_store_are_reloaded(
    stack_env: dict[str, str], make_database: Callable[[], str], kafka_bootstrap: str, one_by_one: bool
) -> None:
    """Two writers, each with its own aggregate cache. Writer A's batch rolls back (its cache is then
    ahead of the store: it has seen payments that were never stored), writer B appends to some of the
    same streams (A's cache is then behind). A's next batch, which redelivers the rolled-back payments,
    must be decided on the stored streams: every payment counted once, the read models equal the store."""
    dsn = make_database()
    migrate_to_head(MIGRATIONS_DIR, dsn)
    config = StoreConfig(topic="ledger.events.v1")
    dead_letters = DeadLetterSender(kafka_bootstrap, "ledger-test.inline")
    writer_a = BackofficeIngress(config, dead_letters, cache=AggregateCache(1000))
    writer_b = BackofficeIngress(config, dead_letters, cache=AggregateCache(1000))
    upstream = UpstreamIngress(config, dead_letters, cache=AggregateCache(1000))
    scenario = Scenario(random.Random(21), accounts=4)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await apply(conn, writer_a, upstream, [scenario.opening(a) for a in scenario.accounts], one_by_one)
        await apply(conn, writer_a, upstream, [scenario.payment(a) for a in scenario.accounts], one_by_one)

        lost = [scenario.payment(a) for a in scenario.accounts for _ in range(2)]
        with pytest.raises(_RolledBack):
            async with conn.transaction():
                if one_by_one:
                    for message in lost:
                        await writer_a.handle(conn, message)
                else:
                    await writer_a.handle_batch(conn, lost)
                raise _RolledBack
        # Two each: those streams are then at the version A's cache has, with other events.
        overtaking = [scenario.payment(a) for a in scenario.accounts[:2] for _ in range(2)]
        await apply(conn, writer_b, upstream, overtaking, one_by_one)
        redelivered = [
            scenario.backoffice(bo.PAYMENTS, "PaymentReported", m.payload, m.key or "") for m in lost
        ]
        await apply(
            conn, writer_a, upstream, [*redelivered, scenario.payment(scenario.accounts[3])], one_by_one
        )

        assert await differences(conn) == []
        cur = await conn.execute("SELECT payment_id, amount FROM ledger_payments")
        stored = dict(await cur.fetchall())
        assert stored == {p.payment_id: p.amount for _, p in scenario.payments}  # each once, none lost
        cur = await conn.execute(
            "SELECT s.stream_id, s.version, (SELECT count(*) FROM events AS e WHERE e.stream_id = s.stream_id)"
            " FROM ledger_streams AS s"
        )
        assert all(version == count for _, version, count in await cur.fetchall())


async def test_concurrent_batches_on_shared_streams_count_everything_once(
    stack_env: dict[str, str], make_database: Callable[[], str], kafka_bootstrap: str
) -> None:
    """The worker runs two consumers per input (`ingress_consumers`): their batches decide at the same
    time and write one after the other (row locks first, the events table's append lock at the write).
    Three transactions at once on the same few accounts, round after round (payments, redeliveries,
    cancellations before and after their payments, corrections, openings racing the facts parked for
    them), with one shared aggregate cache as in the worker: every fact counted once, the read models
    equal to the store. A transaction PostgreSQL aborts for a deadlock is retried, as the runner would."""
    dsn = make_database()
    migrate_to_head(MIGRATIONS_DIR, dsn)
    config = StoreConfig(topic="ledger.events.v1")
    cache = AggregateCache(500)
    dead_letters = DeadLetterSender(kafka_bootstrap, "ledger-test.inline")
    backoffice = BackofficeIngress(config, dead_letters, cache=cache)
    upstream = UpstreamIngress(config, dead_letters, cache=cache)
    rng = random.Random(31)
    scenario = Scenario(rng, accounts=5)
    retried = 0

    async def run(items: list[Item]) -> None:
        """Like a consumer: a transaction per batch of one input (a run of one kind of item)."""
        nonlocal retried
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            for batch in runs_of_one_kind(items):
                for _ in range(20):
                    try:
                        await apply(conn, backoffice, upstream, batch, one_by_one=False)
                        break
                    except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                        retried += 1
                else:
                    raise AssertionError("a batch kept failing")

    for _ in range(8):
        items = scenario.batch(60)
        rng.shuffle(items)
        await asyncio.gather(*(run(items[i::3]) for i in range(3)))
    await run(scenario.openings_left())

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        assert await differences(conn) == []
        cur = await conn.execute("SELECT count(*) FROM ledger_parked")
        assert await cur.fetchone() == (0,)
        cur = await conn.execute("SELECT payment_id, amount, reversed FROM ledger_payments")
        stored = {row[0]: (row[1], row[2]) for row in await cur.fetchall()}
        counted = {p.payment_id: p for _, p in scenario.payments}
        assert stored == {pid: (p.amount, pid in scenario.cancelled) for pid, p in counted.items()}
        cur = await conn.execute(
            "SELECT s.stream_id FROM ledger_streams AS s LEFT JOIN ledger_period_streams AS p"
            " USING (account_no, service_code) WHERE p.version IS DISTINCT FROM s.version"
        )
        assert await cur.fetchall() == []
    assert retried <= 2, f"{retried} deadlocks: the lock order is not kept"
