"""Dead letters sent by a handler itself, for parked messages found invalid when they are applied later.

The runner dead-letters the message it is handling when the handler raises `DeadLetter`. A parked
message is applied while the runner handles *another* message (its account's AccountOpened), so
raising would dead-letter the wrong one: the handler sends it to `<topic>.dlq` itself, with the same
headers as the runner (its original topic, partition and offset; the reason).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka.structs import ConsumerRecord

from service_runtime.dead_letters import RejectedMessage, send_dead_letters
from service_runtime.kafka import idempotent_producer


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A consumed message kept in PostgreSQL: where it came from, its key and its value."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


class DeadLetterSender:
    def __init__(self, bootstrap_servers: str, consumer: str) -> None:
        self._bootstrap = bootstrap_servers
        self._consumer = consumer

    async def send(self, rejected: Sequence[tuple[StoredMessage, str]]) -> None:
        """Rare (a parked message turned out invalid), so a short-lived producer is enough."""
        if not rejected:
            return
        records = [
            RejectedMessage(
                ConsumerRecord(
                    topic=m.topic,
                    partition=m.partition,
                    offset=m.offset,
                    timestamp=0,
                    timestamp_type=0,
                    key=m.key,
                    value=m.value,
                    checksum=None,
                    serialized_key_size=len(m.key or b""),
                    serialized_value_size=len(m.value),
                    headers=(),
                ),
                reason,
            )
            for m, reason in rejected
        ]
        producer = idempotent_producer(self._bootstrap, client_id=f"{self._consumer}-parked-dlq")
        await producer.start()
        try:
            await send_dead_letters(producer, self._consumer, records)
        finally:
            await producer.stop()
