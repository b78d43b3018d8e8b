"""A malformed message of every kind (the simulator's MALFORMED_KINDS) for every back-office event type, on
every ingress topic: each lands, unchanged, in its topic's dead-letter topic, and none changes anything
(no service publishes an event about what it carried).

Templates are real messages of the simulator's generator with fresh markers (account numbers, dates,
codes no one else uses), so a message that slipped through would show on the canonical topics.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import defaultdict
from datetime import date
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from backoffice_simulator.chaos import MALFORMED_KINDS, applicable_kinds, malformed_message
from backoffice_simulator.generator import Scenario, generate
from backoffice_simulator.wire import OutMessage, dumps
from contracts import backoffice as bo
from contracts.registry import registry
from contracts.topics import INGRESS_TOPICS, dead_letter_topic
from tests.support.stack import produce

CANONICAL = ["accounts.events.v1", "ledger.events.v1", "calculator.events.v1", "receipts.events.v1"]


def _fresh_account() -> str:
    return "8" + "".join(random.choice("0123456789") for _ in range(11))


def _templates() -> list[OutMessage]:
    """One valid message per back-office event type, made unique to this run."""
    world = generate(Scenario(seed=11, accounts=60, months=12, today=date(2026, 1, 15)))
    by_type: dict[str, OutMessage] = {}
    for msg in world.messages:
        by_type.setdefault(msg.event_type, msg)
    request = bo.ServiceRequestProgressed(
        request_id=uuid.uuid4().hex, account_no="100000000001", status="in_progress", comment="В работе"
    )
    by_type["ServiceRequestProgressed"] = OutMessage(
        bo.REQUESTS,
        request.account_no,
        dumps(
            {
                "event_id": str(uuid.uuid4()),
                "event_type": "ServiceRequestProgressed",
                "schema_version": 1,
                "occurred_at": "2026-01-15T09:00:00+05:00",
                "producer": "backoffice",
                "payload": request.model_dump(mode="json"),
            }
        ),
        "",
        "ServiceRequestProgressed",
        next(iter(by_type.values())).at,
    )
    assert set(by_type) == {s.event_type for s in registry.specs() if s.topic.startswith("backoffice.")}

    year = random.randint(2150, 2189)
    templates = []
    for event_type, msg in sorted(by_type.items()):
        document = msg.document()
        document["event_id"] = str(uuid.uuid4())
        payload: dict[str, Any] = document["payload"]
        key = msg.key
        if "account_no" in payload:
            payload["account_no"] = key = _fresh_account()
        if event_type in ("TariffPublished", "VatRateChanged"):
            payload["effective_from"] = key = f"{year}-{random.randint(1, 12):02d}-01"
        if event_type == "PeriodClosed":
            payload["period"] = key = f"{year}-{random.randint(1, 12):02d}"
        if event_type == "DistrictOfficeUpdated":
            payload["code"] = key = f"SEC{uuid.uuid4().hex[:8].upper()}"
        for name in ("payment_id", "correction_id", "request_id"):
            if name in payload:
                payload[name] = f"SEC-{uuid.uuid4().hex[:16]}"
        templates.append(
            OutMessage(msg.topic, key, dumps(document), document["event_id"], event_type, msg.at, "valid")
        )
    return templates


def _markers(msg: OutMessage) -> set[str]:
    payload = msg.document()["payload"]
    keys = ("account_no", "payment_id", "correction_id", "request_id", "code", "effective_from", "period")
    return {str(payload[k]) for k in keys if k in payload}


async def _end_offsets(bootstrap: str, topics: list[str]) -> dict[TopicPartition, int]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)  # its partitions_for() fetches metadata
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(await producer.partitions_for(t))]
        return {tp: int(o) for tp, o in (await consumer.end_offsets(partitions)).items()}
    finally:
        await consumer.stop()
        await producer.stop()


async def _read_since(
    bootstrap: str, start: dict[TopicPartition, int], done: Any, timeout_s: float
) -> list[Any]:
    """Records after `start` until `done(records)` or the deadline."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    records: list[Any] = []
    try:
        consumer.assign(list(start))
        for tp, offset in start.items():
            consumer.seek(tp, offset)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not done(records) and loop.time() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500, max_records=2000)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def test_every_malformed_kind_on_every_ingress_topic_ends_in_its_dead_letters(
    running_services: str, kafka_bootstrap: str
) -> None:
    templates = _templates()
    bad: list[tuple[OutMessage, str]] = []
    for template in templates:
        for kind in applicable_kinds(template):
            bad.append((malformed_message(template.topic, template.key, kind, template), kind))
    kinds_by_topic: dict[str, set[str]] = defaultdict(set)
    for msg, kind in bad:
        kinds_by_topic[msg.topic].add(kind)
    assert set(kinds_by_topic) == {t.name for t in INGRESS_TOPICS}
    assert set().union(*kinds_by_topic.values()) == set(MALFORMED_KINDS)

    dlqs = sorted({dead_letter_topic(t.name) for t in INGRESS_TOPICS})
    dlq_start = await _end_offsets(kafka_bootstrap, dlqs)
    canonical_start = await _end_offsets(kafka_bootstrap, CANONICAL)
    for topic in kinds_by_topic:
        await produce(kafka_bootstrap, topic, [(m.key.encode(), m.value) for m, _ in bad if m.topic == topic])

    wanted = {(dead_letter_topic(m.topic), m.value): kind for m, kind in bad}

    def arrived(records: list[Any]) -> bool:
        return wanted.keys() <= {(r.topic, r.value) for r in records}

    records = await _read_since(kafka_bootstrap, dlq_start, arrived, timeout_s=240)
    seen: dict[tuple[str, bytes], list[dict[str, str]]] = defaultdict(list)
    for r in records:
        if (r.topic, r.value) in wanted:
            seen[(r.topic, r.value)].append({k: v.decode() for k, v in r.headers})
    missing = [
        f"{topic} {wanted[(topic, value)]}: {value[:100]!r}"
        for topic, value in wanted
        if (topic, value) not in seen
    ]
    assert not missing, f"{len(missing)} of {len(wanted)} not dead-lettered:\n" + "\n".join(missing)
    for (topic, _value), headers in seen.items():
        for h in headers:
            assert h["dlq.source.topic"] == topic.removesuffix(".dlq")
            assert h["dlq.reason"].startswith(
                ("validation failed", "malformed message", "unknown event type", "unsupported schema version")
            ), h["dlq.reason"]
            assert h["dlq.consumer"] and h["dlq.failed_at"]
    consumers = {h["dlq.consumer"] for headers in seen.values() for h in headers}
    print(
        f"\n{len(bad)} malformed messages ({len(templates)} event types × their kinds) on {len(kinds_by_topic)} "
        f"topics: all dead-lettered, {sum(len(h) for h in seen.values())} dead letters by {sorted(consumers)}"
    )

    # Nothing they carried reached a service's events (they were refused whole, not half-applied).
    markers = set().union(*(_markers(m) for m in templates))
    canonical = await _read_since(kafka_bootstrap, canonical_start, lambda _r: False, timeout_s=5)
    leaked = [
        r.value[:200] for r in canonical if any(m in r.value.decode("utf-8", "replace") for m in markers)
    ]
    assert not leaked, leaked
    # And the DLQ values are the bytes that were sent (bad JSON included), keyed as sent.
    keys = {(dead_letter_topic(m.topic), m.value): m.key.encode() for m, _ in bad}
    assert all(r.key == keys[(r.topic, r.value)] for r in records if (r.topic, r.value) in keys)
    assert json.loads(next(m for m, k in bad if k == "wrong_schema_version").value)["schema_version"] == 2
