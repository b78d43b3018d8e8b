"""The event runtime against real PostgreSQL and Kafka: after every fault, the read model equals the events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import subprocess
from decimal import Decimal
from typing import Any

import orjson
import pytest

from contracts.envelope import Envelope
from service_runtime.consumers import CanonicalEvent, ConsumerRunner
from service_runtime.db import Connection
from service_runtime.dead_letters import REASON_HEADER, SOURCE_OFFSET_HEADER
from service_runtime.eventstore import ConcurrencyError, NewEvent
from service_runtime.relay import OutboxRelay
from tests.integration.runtime.conftest import AmountRecorded, MiniService, TotalsProjection
from tests.support.stack import REPO, eventually, produce, read_topic


async def append_amounts(mini: MiniService, streams: int, per_stream: int, seed: int = 1) -> Decimal:
    rng = random.Random(seed)
    total = Decimal("0.00")
    for s in range(streams):
        stream = f"acct-{s:04d}"
        async with mini.pool.connection() as conn:
            version = await mini.store.stream_version(conn, stream)
            events = []
            for _ in range(per_stream):
                amount = Decimal(rng.randint(1, 1_000_000)) / 100
                total += amount
                events.append(NewEvent(AmountRecorded(amount=amount)))
            await mini.store.append(conn, stream, version, events)
    return total


async def run_until(runner: ConsumerRunner, mini: MiniService, expected_events: int) -> None:
    task = asyncio.create_task(runner.run())
    try:

        async def applied_all() -> bool:
            model = await mini.read_model()
            return sum(n for n, _, _ in model.values()) >= expected_events

        await eventually(applied_all)
    finally:
        runner.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def relay_all(relay: OutboxRelay) -> int:
    published = 0
    try:
        while n := await relay.publish_once():
            published += n
    finally:
        await relay.close()
    return published


async def test_append_relay_consume_project(mini: MiniService) -> None:
    total = await append_amounts(mini, streams=20, per_stream=10)
    assert await relay_all(mini.relay()) == 200
    await run_until(mini.runner(), mini, 200)
    model = await mini.read_model()
    assert model == await mini.expected_from_events()
    assert sum(t for _, t, _ in model.values()) == total

    # The envelope on Kafka is the one that was appended, keyed by stream id, per-stream in order.
    records = await read_topic(mini.bootstrap, mini.topic, expect=200)
    by_stream: dict[str, list[int]] = {}
    for record in records:
        envelope = Envelope.model_validate_json(record.value)
        assert record.key == envelope.stream_id.encode()
        assert envelope.producer == "mini" and envelope.event_type == "AmountRecorded"
        by_stream.setdefault(envelope.stream_id, []).append(envelope.stream_version)
    assert all(versions == sorted(versions) for versions in by_stream.values())


async def test_relay_killed_between_publishing_and_recording_progress(mini: MiniService) -> None:
    class CrashBeforeRecording(OutboxRelay):
        async def _record_position(self, conn: Connection, tx_id: str, position: int) -> None:
            raise SystemExit("killed after publishing, before recording progress")

    await append_amounts(mini, streams=5, per_stream=20)
    crashing = mini.relay(CrashBeforeRecording)
    with pytest.raises(SystemExit):
        await crashing.publish_once()
    await crashing.close()
    # A restarted relay publishes the batch again: Kafka now holds every event twice...
    assert await relay_all(mini.relay()) == 100
    assert len(await read_topic(mini.bootstrap, mini.topic, expect=200)) == 200
    # ...and the projection still counts each once.
    await run_until(mini.runner(), mini, 100)
    assert await mini.read_model() == await mini.expected_from_events()


async def test_consumer_killed_mid_batch_resumes_exactly(mini: MiniService) -> None:
    await append_amounts(mini, streams=10, per_stream=30)
    await relay_all(mini.relay())

    stuck = asyncio.Event()

    class HangsMidBatch(TotalsProjection):
        applied = 0

        async def apply(self, conn: Connection, event: CanonicalEvent) -> None:
            await super().apply(conn, event)
            HangsMidBatch.applied += 1
            if HangsMidBatch.applied == 150:  # inside the second batch of 100
                stuck.set()
                await asyncio.Event().wait()

    runner = mini.runner(HangsMidBatch(mini.topic), batch_size=100)
    task = asyncio.create_task(runner.run())
    await asyncio.wait_for(stuck.wait(), 60)
    task.cancel()  # the process dies mid-transaction
    with contextlib.suppress(asyncio.CancelledError):
        await task
    partial = await mini.read_model()
    assert sum(n for n, _, _ in partial.values()) == 100, "only the committed batch is visible"

    await run_until(mini.runner(), mini, 300)
    assert await mini.read_model() == await mini.expected_from_events()


async def test_same_event_delivered_twice_is_applied_once(mini: MiniService) -> None:
    await append_amounts(mini, streams=3, per_stream=5)
    await relay_all(mini.relay())
    records = await read_topic(mini.bootstrap, mini.topic, expect=15)
    # Deliver every event again, byte for byte, and some a third time, out of their original order.
    again = [(r.key, r.value) for r in records] + [(r.key, r.value) for r in records[::3]]
    await produce(mini.bootstrap, mini.topic, again)
    await run_until(mini.runner(), mini, 15)
    await asyncio.sleep(1)  # let the duplicates be consumed too
    runner = mini.runner()
    await run_until(runner, mini, 15)
    assert await mini.read_model() == await mini.expected_from_events()


async def test_malformed_message_goes_to_dead_letters_and_the_next_is_applied(mini: MiniService) -> None:
    await append_amounts(mini, streams=1, per_stream=1)
    await relay_all(mini.relay())
    good = (await read_topic(mini.bootstrap, mini.topic, expect=1))[0]
    envelope = json.loads(good.value)
    bad_payload = dict(envelope, stream_id="acct-bad", stream_version=1, payload={"amount": "1.234"})
    unknown = dict(envelope, stream_id="acct-unknown", stream_version=1, event_type="NoSuchEvent")
    next_good = dict(
        envelope, stream_id="acct-next", stream_version=1, event_id="8d6f8f0e-0000-4000-8000-000000000001"
    )
    await produce(
        mini.bootstrap,
        mini.topic,
        [
            (b"acct-0000", b"{not json"),
            (b"acct-0000", orjson.dumps(bad_payload)),
            (b"acct-0000", orjson.dumps(unknown)),
            (b"acct-0000", orjson.dumps(next_good)),
        ],
    )
    await run_until(mini.runner(), mini, 2)
    model = await mini.read_model()
    assert set(model) == {"acct-0000", "acct-next"}

    dead = await read_topic(mini.bootstrap, f"{mini.topic}.dlq", expect=2)
    assert [d.value for d in dead] == [b"{not json", orjson.dumps(bad_payload)]
    reasons = [dict(d.headers)[REASON_HEADER].decode() for d in dead]
    assert "malformed" in reasons[0] or "validation" in reasons[0]
    assert "amount" in reasons[1] and "two decimals" in reasons[1]
    # An event type this projection doesn't apply (here: one no contract knows) only advances progress.
    assert all(SOURCE_OFFSET_HEADER in dict(d.headers) for d in dead)


async def test_concurrent_append_to_the_same_stream_is_rejected(mini: MiniService) -> None:
    async def append_one(amount: str) -> str:
        async with mini.pool.connection() as conn:
            try:
                await mini.store.append(
                    conn, "acct-race", 0, [NewEvent(AmountRecorded(amount=Decimal(amount)))]
                )
                return "ok"
            except ConcurrencyError:
                return "rejected"

    outcomes = await asyncio.gather(*(append_one(f"{i}.00") for i in range(1, 9)))
    assert sorted(outcomes) == ["ok"] + ["rejected"] * 7
    async with mini.pool.connection() as conn:
        assert [e.stream_version for e in await mini.store.read_stream(conn, "acct-race")] == [1]
        with pytest.raises(ConcurrencyError):
            await mini.store.append(conn, "acct-race", 5, [NewEvent(AmountRecorded(amount=Decimal("1.00")))])


async def test_rebuild_replays_to_the_same_read_model(mini: MiniService) -> None:
    await append_amounts(mini, streams=8, per_stream=8)
    await relay_all(mini.relay())
    await run_until(mini.runner(), mini, 64)
    before = await mini.read_model()
    runner = mini.runner()
    await runner.reset_for_rebuild()
    assert await mini.read_model() == {}
    await run_until(mini.runner(), mini, 64)
    assert await mini.read_model() == before == await mini.expected_from_events()


async def test_events_appended_while_kafka_is_down_are_published_after_restart(mini: MiniService) -> None:
    relay = mini.relay()
    relay_task = asyncio.create_task(relay.run())
    try:
        await append_amounts(mini, streams=4, per_stream=5, seed=3)
        await asyncio.to_thread(stack, "stop-kafka")
        try:
            await append_amounts(mini, streams=4, per_stream=5, seed=4)  # appends keep working
            await asyncio.sleep(2)  # the relay fails and retries meanwhile
        finally:
            await asyncio.to_thread(stack, "start-kafka")
        await run_until(mini.runner(), mini, 40)
    finally:
        relay.stop()
        relay_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay_task
    assert await mini.read_model() == await mini.expected_from_events()


def stack(command: str) -> None:
    subprocess.run([str(REPO / "deploy/local/stack.sh"), command], check=True, env=os.environ, timeout=180)


async def test_kcat_reads_well_formed_envelopes(mini: MiniService) -> None:
    await append_amounts(mini, streams=2, per_stream=3)
    await relay_all(mini.relay())
    kcat = [
        "kcat",
        "-b",
        mini.bootstrap,
        "-C",
        "-t",
        mini.topic,
        "-o",
        "beginning",
        "-e",
        "-q",
        "-f",
        "%k\t%s\n",
    ]
    done = await asyncio.to_thread(subprocess.run, kcat, check=True, capture_output=True, timeout=60)
    out = done.stdout.decode()
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 6
    for line in lines:
        key, _, value = line.partition("\t")
        body: dict[str, Any] = json.loads(value)
        assert set(body) == set(Envelope.model_fields)
        assert body["stream_id"] == key and body["payload"]["amount"].count(".") == 1


async def test_only_one_relay_publishes_at_a_time(mini: MiniService) -> None:
    await append_amounts(mini, streams=4, per_stream=50)
    first, second = mini.relay(batch_size=20), mini.relay(batch_size=20)
    counts = await asyncio.gather(first.publish_available(), second.publish_available())
    await first.close()
    await second.close()
    assert sorted(counts) == [0, 200], "the stand-by replica published nothing"
    # Read for more than there should be: a duplicate would show up as a 201st record.
    assert len(await read_topic(mini.bootstrap, mini.topic, expect=201, timeout_s=5)) == 200
