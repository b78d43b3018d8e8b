"""Every Kafka topic of the system, with its default partition count and retention.

Topics are created by `service_runtime.kafka_admin.ensure_topics` at start. Partition counts can be
overridden per topic by the `KAFKA_TOPIC_PARTITIONS` setting (JSON object, topic → count).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class TopicKind(StrEnum):
    CANONICAL = "canonical"  # a service's own events, published through its outbox
    INGRESS = "ingress"  # the back-office's facts, BACKOFFICE_EVENTS.md
    DEAD_LETTER = "dead_letter"  # messages that did not parse or validate, unchanged, with the reason


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    kind: TopicKind
    partitions: int
    description: str
    # Event topics are the system's history: a projection is rebuilt by replaying them, so keep them.
    retention_ms: int = -1


def _dlq(topic: TopicSpec) -> TopicSpec:
    return TopicSpec(f"{topic.name}.dlq", TopicKind.DEAD_LETTER, 1, f"Dead letters of {topic.name}")


ACCOUNT_PARTITIONS = 6

CANONICAL_TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec("identity.events.v1", TopicKind.CANONICAL, 3, "Identity: users, credentials, profile"),
    TopicSpec("accounts.events.v1", TopicKind.CANONICAL, ACCOUNT_PARTITIONS, "Accounts, links, requests"),
    TopicSpec("ledger.events.v1", TopicKind.CANONICAL, ACCOUNT_PARTITIONS, "Accruals, corrections, payments"),
    TopicSpec("calculator.events.v1", TopicKind.CANONICAL, ACCOUNT_PARTITIONS, "Readings, charges, tariffs"),
    TopicSpec("receipts.events.v1", TopicKind.CANONICAL, ACCOUNT_PARTITIONS, "Bills and e-bill delivery"),
)

INGRESS_TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec("backoffice.accounts.v1", TopicKind.INGRESS, ACCOUNT_PARTITIONS, "Accounts opened and changed"),
    TopicSpec("backoffice.payments.v1", TopicKind.INGRESS, ACCOUNT_PARTITIONS, "Bank payments"),
    TopicSpec("backoffice.readings.v1", TopicKind.INGRESS, ACCOUNT_PARTITIONS, "Grid company's readings"),
    TopicSpec("backoffice.tariffs.v1", TopicKind.INGRESS, 1, "Tariff catalog and VAT rates"),
    TopicSpec("backoffice.billing.v1", TopicKind.INGRESS, ACCOUNT_PARTITIONS, "Period closings, corrections"),
    TopicSpec("backoffice.reference.v1", TopicKind.INGRESS, 1, "District offices"),
    TopicSpec("backoffice.requests.v1", TopicKind.INGRESS, ACCOUNT_PARTITIONS, "Customer request progress"),
)

DEAD_LETTER_TOPICS: tuple[TopicSpec, ...] = tuple(_dlq(t) for t in CANONICAL_TOPICS + INGRESS_TOPICS)

ALL_TOPICS: tuple[TopicSpec, ...] = CANONICAL_TOPICS + INGRESS_TOPICS + DEAD_LETTER_TOPICS


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


def canonical_topic(service: str) -> str:
    return f"{service}.events.v1"


def topic_spec(name: str) -> TopicSpec:
    for spec in ALL_TOPICS:
        if spec.name == name:
            return spec
    raise KeyError(name)
