"""The runner's batch hooks for ingress handlers, and its set-based progress rows, on the real stack."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson
import psycopg
import pytest

from contracts.money import Money
from contracts.registry import EventPayload
from service_runtime.consumers import ConsumerRunner, IngressHandler, IngressMessage
from service_runtime.db import Connection
from service_runtime.dead_letters import REASON_HEADER, DeadLetter
from tests.integration.runtime.conftest import MiniService
from tests.support.stack import eventually, produce, read_topic

RECEIPTS_SQL = """
CREATE TABLE IF NOT EXISTS receipts (
    event_id UUID PRIMARY KEY,
    account TEXT NOT NULL,
    amount NUMERIC(16, 2) NOT NULL,
    handled_by TEXT NOT NULL
)
"""


class AmountReported(EventPayload):
    account: str
    amount: Money


class Receipts(IngressHandler):
    """Records each message; refuses the account "refused". Counts how it was called."""

    name: ClassVar[str] = "receipts"
    topics: ClassVar[tuple[str, ...]] = ()
    on_conflict: ClassVar[str] = ""  # a duplicate event id fails the insert

    def __init__(self, topic: str) -> None:
        self.topics = (topic,)  # type: ignore[misc]
        self.single_calls = 0

    async def handle(self, conn: Connection, message: IngressMessage) -> None:
        self.single_calls += 1
        await self._record(conn, [message], "handle")

    async def _record(self, conn: Connection, messages: Sequence[IngressMessage], how: str) -> None:
        for message in messages:
            if message.payload.account == "refused":
                raise DeadLetter(f"account refused: {message.envelope.event_id}")
        await conn.execute(
            "INSERT INTO receipts (event_id, account, amount, handled_by)"
            " SELECT e, a, m, %s FROM unnest(%s::uuid[], %s::text[], %s::numeric[]) AS k(e, a, m)"
            + self.on_conflict,
            (
                how,
                [m.envelope.event_id for m in messages],
                [m.payload.account for m in messages],
                [m.payload.amount for m in messages],
            ),
        )


class BatchReceipts(Receipts):
    name: ClassVar[str] = "batch-receipts"

    def __init__(self, topic: str) -> None:
        super().__init__(topic)
        self.batch_sizes: list[int] = []

    async def handle_batch(self, conn: Connection, messages: Sequence[IngressMessage]) -> None:
        self.batch_sizes.append(len(messages))
        await self._record(conn, messages, "batch")


def message(account: str, amount: str, event_id: str | None = None) -> bytes:
    return orjson.dumps(
        {
            "event_id": event_id or str(uuid.uuid4()),
            "event_type": "AmountReported",
            "schema_version": 1,
            "occurred_at": datetime.now(UTC).isoformat(),
            "producer": "backoffice",
            "payload": {"account": account, "amount": amount},
        }
    )


async def fresh_topic(mini: MiniService, make_topics: Any, *, partitions: int) -> str:
    """A new topic (and its DLQ) carrying AmountReported, and an empty `receipts` table."""
    topic = f"test.ingress.{uuid.uuid4().hex[:10]}"
    await make_topics(topic, f"{topic}.dlq", partitions=partitions)
    mini.registry.register("AmountReported", version=1, topic=topic)(AmountReported)
    async with mini.pool.connection() as conn:
        await conn.execute(RECEIPTS_SQL)
        await conn.execute("TRUNCATE receipts")
    return topic


async def consume(runner: ConsumerRunner, mini: MiniService, expected_rows: int) -> list[tuple[Any, ...]]:
    task = asyncio.create_task(runner.run())
    try:

        async def done() -> bool:
            return len(await rows(mini)) >= expected_rows

        await eventually(done, timeout_s=120)
    finally:
        runner.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return await rows(mini)


async def rows(mini: MiniService) -> list[tuple[Any, ...]]:
    async with mini.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT event_id, account, amount, handled_by FROM receipts ORDER BY account"
        )
        return list(await cur.fetchall())


@pytest.mark.parametrize("handler_class", [BatchReceipts, Receipts])
async def test_ingress_batches_dead_letters_and_progress(
    mini: MiniService, make_topics: Any, handler_class: type[Receipts]
) -> None:
    """A batch goes to `handle_batch` (the default loops over `handle`); a dead letter redoes the batch
    message by message and refuses only the offender; duplicates are applied once; the inbox and the
    offsets are recorded for the whole batch."""
    topic = await fresh_topic(mini, make_topics, partitions=2)

    duplicate = str(uuid.uuid4())
    first = [(f"a{i:03d}".encode(), message(f"a{i:03d}", f"{i}.50")) for i in range(40)]
    await produce(mini.bootstrap, topic, [*first, (b"a000", message("a000", "1.00", duplicate))])
    handler = handler_class(topic)
    runner = ConsumerRunner(
        handler, mini.pool, mini.bootstrap, service=f"mini-{topic}", event_registry=mini.registry
    )
    got = await consume(runner, mini, 41)
    assert len(got) == 41
    if isinstance(handler, BatchReceipts):
        assert {how for *_, how in got} == {"batch"} and sum(handler.batch_sizes) == 41
        assert handler.single_calls == 0

    # A second delivery: the duplicate again (a new offset, the same event id), a refused message.
    second = [
        (b"a000", message("a000", "1.00", duplicate)),
        (b"refused", message("refused", "9.99")),
        (b"b001", message("b001", "2.00")),
    ]
    await produce(mini.bootstrap, topic, second)
    runner = ConsumerRunner(
        handler, mini.pool, mini.bootstrap, service=f"mini-{topic}", event_registry=mini.registry
    )
    got = await consume(runner, mini, 42)
    assert len(got) == 42 and "refused" not in {account for _, account, _, _ in got}
    dead = await read_topic(mini.bootstrap, f"{topic}.dlq", expect=1)
    assert [orjson.loads(d.value)["payload"]["account"] for d in dead] == ["refused"]
    assert dict(dead[0].headers)[REASON_HEADER].decode().startswith("account refused")
    assert handler.single_calls >= 1, "the batch with the refused message was redone one by one"

    async with mini.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM consumer_inbox WHERE consumer = %s", (runner.consumer_id,)
        )
        inbox = await cur.fetchone()
        cur = await conn.execute(
            "SELECT sum(next_offset) FROM consumer_offsets WHERE consumer = %s", (runner.consumer_id,)
        )
        offsets = await cur.fetchone()
    assert inbox is not None and inbox[0] == 42, "the refused message is not marked done"
    assert offsets is not None and offsets[0] == 44, "every message consumed, the refused one too"


class KeyedReceipts(BatchReceipts):
    """Idempotent by its own key (the event id is its primary key here): the runner skips the inbox."""

    name: ClassVar[str] = "keyed-receipts"
    idempotent_by_content: ClassVar[bool] = True
    on_conflict: ClassVar[str] = " ON CONFLICT (event_id) DO NOTHING"

    def __init__(self, topic: str) -> None:
        super().__init__(topic)
        self.handed_over = 0

    async def _record(self, conn: Connection, messages: Sequence[IngressMessage], how: str) -> None:
        self.handed_over += len(messages)
        await super()._record(conn, messages, how)


async def test_a_handler_idempotent_by_content_gets_every_message_and_no_inbox(
    mini: MiniService, make_topics: Any
) -> None:
    """`idempotent_by_content`: duplicates are handed over (the handler drops them itself), nothing is
    looked up in or written to `consumer_inbox`; the offsets are still recorded with the batch."""
    topic = await fresh_topic(mini, make_topics, partitions=1)
    duplicate = str(uuid.uuid4())
    messages = [(f"k{i:03d}".encode(), message(f"k{i:03d}", f"{i}.25")) for i in range(10)]
    messages += [(b"k000", message("k000", "1.00", duplicate))] * 2
    await produce(mini.bootstrap, topic, messages)
    handler = KeyedReceipts(topic)
    runner = ConsumerRunner(
        handler, mini.pool, mini.bootstrap, service=f"mini-{topic}", event_registry=mini.registry
    )

    async def all_consumed() -> bool:
        async with mini.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT sum(next_offset) FROM consumer_offsets WHERE consumer = %s", (runner.consumer_id,)
            )
            return await cur.fetchone() == (12,)

    task = asyncio.create_task(runner.run())
    try:
        await eventually(all_consumed, timeout_s=120)
    finally:
        runner.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert len(await rows(mini)) == 11 and handler.handed_over == 12
    async with mini.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM consumer_inbox WHERE consumer = %s", (runner.consumer_id,)
        )
        assert await cur.fetchone() == (0,)


class OnceDeadlocked(KeyedReceipts):
    """Its first batch's transaction is chosen as a deadlock victim (as PostgreSQL would do it)."""

    name: ClassVar[str] = "once-deadlocked"

    def __init__(self, topic: str) -> None:
        super().__init__(topic)
        self.deadlocks = 0

    async def _record(self, conn: Connection, messages: Sequence[IngressMessage], how: str) -> None:
        await super()._record(conn, messages, how)  # written, then rolled back with the transaction
        if self.deadlocks == 0:
            self.deadlocks += 1
            raise psycopg.errors.DeadlockDetected("deadlock detected (test)")


async def test_a_batch_rolled_back_for_a_deadlock_is_retried_at_once(
    mini: MiniService, make_topics: Any
) -> None:
    """A deadlock victim's batch is applied again in a new transaction by the same consumer (no restart
    of its Kafka clients, no rebalance): everything once, the offsets recorded."""
    topic = await fresh_topic(mini, make_topics, partitions=1)
    await produce(mini.bootstrap, topic, [(f"d{i}".encode(), message(f"d{i}", f"{i}.10")) for i in range(5)])
    handler = OnceDeadlocked(topic)
    runner = ConsumerRunner(
        handler, mini.pool, mini.bootstrap, service=f"mini-{topic}", event_registry=mini.registry
    )
    started = runner._start_clients
    starts = 0

    async def counting_start() -> None:
        nonlocal starts
        starts += runner._consumer is None
        await started()

    runner._start_clients = counting_start  # type: ignore[method-assign]
    got = await consume(runner, mini, 5)
    assert len(got) == 5 and handler.deadlocks == 1
    assert starts == 1, "the consumer was restarted instead of retrying the batch"
