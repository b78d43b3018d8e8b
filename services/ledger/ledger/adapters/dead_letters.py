"""Dead letters the ledger sends itself: parked messages found invalid when they are applied later.

The runner dead-letters the message it is handling when the handler raises `DeadLetter`. A parked
message is applied while the runner handles *another* message (the account's AccountOpened, or the
payment a cancellation waited for), so raising would dead-letter the wrong one: it is sent here to its
own topic's `.dlq`, with the runner's headers (origin topic, partition, offset, the reason).
Rare, so a short-lived producer is enough.
"""

from __future__ import annotations

from datetime import UTC, datetime

from contracts.topics import dead_letter_topic
from service_runtime.dead_letters import (
    CONSUMER_HEADER,
    DEAD_LETTERS,
    FAILED_AT_HEADER,
    MAX_REASON_BYTES,
    REASON_HEADER,
    SOURCE_OFFSET_HEADER,
    SOURCE_PARTITION_HEADER,
    SOURCE_TOPIC_HEADER,
)
from service_runtime.kafka import idempotent_producer


class DeadLetterSender:
    def __init__(self, bootstrap_servers: str, consumer: str) -> None:
        self._bootstrap = bootstrap_servers
        self._consumer = consumer

    async def send(
        self, *, topic: str, partition: int, offset: int, key: bytes | None, value: bytes, reason: str
    ) -> None:
        headers = [
            (REASON_HEADER, reason.encode()[:MAX_REASON_BYTES]),
            (SOURCE_TOPIC_HEADER, topic.encode()),
            (SOURCE_PARTITION_HEADER, str(partition).encode()),
            (SOURCE_OFFSET_HEADER, str(offset).encode()),
            (CONSUMER_HEADER, self._consumer.encode()),
            (FAILED_AT_HEADER, datetime.now(UTC).isoformat().encode()),
        ]
        producer = idempotent_producer(self._bootstrap, client_id=f"{self._consumer}-parked-dlq")
        await producer.start()
        try:
            await producer.send_and_wait(dead_letter_topic(topic), value=value, key=key, headers=headers)
        finally:
            await producer.stop()
        DEAD_LETTERS.labels(self._consumer, topic).inc()
