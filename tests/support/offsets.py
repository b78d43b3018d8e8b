"""Starting a test harness's consumers at the current end of the shared topics.

The shared topics keep every earlier run's and every other engineer's messages forever. A fresh
harness would replay all of them (which grows without bound and mixes in other databases' streams).
Tests use fresh account numbers and ids, so the history is not needed: the consumers' offsets are
written into the fresh database before the worker starts, as the runner would have stored them (it
seeks to the stored offsets).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

Offsets = dict[str, dict[int, int]]  # topic -> partition -> next offset


class Handler(Protocol):
    """A projection or an ingress handler: what it is called and what it reads."""

    @property
    def name(self) -> str: ...
    @property
    def topics(self) -> Sequence[str]: ...


async def end_offsets(bootstrap: str, topics: Iterable[str]) -> Offsets:
    """The current end of every partition of `topics`."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)  # its partitions_for() fetches the metadata
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    try:
        result: Offsets = {}
        for topic in topics:
            tps = [TopicPartition(topic, p) for p in sorted(await producer.partitions_for(topic))]
            ends = await consumer.end_offsets(tps)
            result[topic] = {tp.partition: int(offset) for tp, offset in ends.items()}
            assert result[topic], f"no partitions found for {topic}"
        return result
    finally:
        await consumer.stop()
        await producer.stop()


def seed_consumer_offsets(
    dsn: str, consumer_prefix: str, handlers: Iterable[Handler], offsets: Offsets
) -> None:
    """Make every consumer `<consumer_prefix>.<handler>` start at `offsets` (what a rebuild's replay
    starts from, too)."""
    rows = [
        (f"{consumer_prefix}.{handler.name}", topic, partition, offset)
        for handler in handlers
        for topic in handler.topics
        for partition, offset in offsets[topic].items()
    ]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.cursor().executemany(
            "INSERT INTO consumer_offsets (consumer, topic, partition, next_offset) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (consumer, topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
            rows,
        )


async def start_at_the_end(
    dsn: str, bootstrap: str, consumer_prefix: str, handlers: Sequence[Handler]
) -> Offsets:
    """Seed the consumers of `handlers` at the current end of their topics; returns those offsets."""
    offsets = await end_offsets(bootstrap, dict.fromkeys(t for h in handlers for t in h.topics))
    seed_consumer_offsets(dsn, consumer_prefix, handlers, offsets)
    return offsets
