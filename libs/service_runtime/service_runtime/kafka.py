"""Kafka clients (aiokafka) configured the way every service needs them, and topic creation."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner, murmur2

from contracts.topics import ALL_TOPICS, TopicSpec

log = logging.getLogger(__name__)


class RememberingPartitioner:
    """aiokafka's DefaultPartitioner (the Java client's murmur2 of the key, so every client agrees on a
    key's partition), remembering each key's hash: aiokafka computes murmur2 in pure Python (≈5 µs a
    key), and a relay publishes the same stream ids over and over. Bounded: cleared when full."""

    def __init__(self, max_keys: int = 200_000) -> None:
        self._max_keys = max_keys
        self._hashes: dict[bytes, int] = {}

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return int(DefaultPartitioner()(key, all_partitions, available))
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= self._max_keys:
                self._hashes.clear()
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]


def idempotent_producer(bootstrap_servers: str, *, client_id: str) -> AIOKafkaProducer:
    """acks=all and idempotence: a retried send is written once, and order per partition is kept."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        partitioner=RememberingPartitioner(),
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
        request_timeout_ms=15000,
        retry_backoff_ms=200,
    )


def manual_commit_consumer(
    bootstrap_servers: str, *, group_id: str, client_id: str, topics: Iterable[str] = ()
) -> AIOKafkaConsumer:
    """Offsets live in PostgreSQL with the read model, so Kafka's auto-commit is off."""
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
    )


async def ensure_topics(
    bootstrap_servers: str,
    specs: Iterable[TopicSpec] = ALL_TOPICS,
    partition_overrides: Mapping[str, int] | None = None,
) -> list[str]:
    """Create the topics that are missing. Returns the names created."""
    overrides = partition_overrides or {}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="topic-setup")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name=spec.name,
                num_partitions=overrides.get(spec.name, spec.partitions),
                replication_factor=1,
                topic_configs={"retention.ms": str(spec.retention_ms)},
            )
            for spec in specs
            if spec.name not in existing
        ]
        if missing:
            # Another process may have created them between the list and the create.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
            log.info("created topics", extra={"topics": [t.name for t in missing]})
        return [t.name for t in missing]
    finally:
        await admin.close()
