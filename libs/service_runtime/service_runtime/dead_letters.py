"""Dead letters: a message that does not parse or validate goes, unchanged, to `<topic>.dlq`.

The reason and the message's origin travel in headers, so a dead letter can be listed, explained and
replayed after a fix (BACKOFFICE_EVENTS.md). Key and value are the original bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter

from contracts.topics import dead_letter_topic

DEAD_LETTERS = Counter("dead_letters_total", "Messages sent to a dead-letter topic", ["consumer", "topic"])

REASON_HEADER = "dlq.reason"
SOURCE_TOPIC_HEADER = "dlq.source.topic"
SOURCE_PARTITION_HEADER = "dlq.source.partition"
SOURCE_OFFSET_HEADER = "dlq.source.offset"
CONSUMER_HEADER = "dlq.consumer"
FAILED_AT_HEADER = "dlq.failed_at"

MAX_REASON_BYTES = 4000


class DeadLetter(Exception):
    """Raised by a handler for a message it can never apply; the runner dead-letters it and goes on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RejectedMessage:
    record: ConsumerRecord[bytes, bytes]
    reason: str


def dead_letter_headers(
    record: ConsumerRecord[bytes, bytes], reason: str, consumer: str
) -> list[tuple[str, bytes]]:
    kept = [(k, v) for k, v in (record.headers or ()) if not k.startswith("dlq.")]
    return [
        *kept,
        (REASON_HEADER, reason.encode()[:MAX_REASON_BYTES]),
        (SOURCE_TOPIC_HEADER, record.topic.encode()),
        (SOURCE_PARTITION_HEADER, str(record.partition).encode()),
        (SOURCE_OFFSET_HEADER, str(record.offset).encode()),
        (CONSUMER_HEADER, consumer.encode()),
        (FAILED_AT_HEADER, datetime.now(UTC).isoformat().encode()),
    ]


async def send_dead_letters(
    producer: AIOKafkaProducer, consumer: str, rejected: list[RejectedMessage]
) -> None:
    futures = []
    for item in rejected:
        record = item.record
        futures.append(
            await producer.send(
                dead_letter_topic(record.topic),
                value=record.value,
                key=record.key,
                headers=dead_letter_headers(record, item.reason, consumer),
            )
        )
        DEAD_LETTERS.labels(consumer, record.topic).inc()
    for future in futures:
        await future
