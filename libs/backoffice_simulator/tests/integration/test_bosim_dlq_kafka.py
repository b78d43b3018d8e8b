"""DLQ tooling against the real Kafka: dead letters written the way the runtime writes them (same
headers, several consumers per bad message) are listed once each, replayed after a fix, and never twice.

The runtime's own header writer (service_runtime.dead_letters.dead_letter_headers) builds the headers,
so this test breaks if the tool and the runtime disagree on them.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from typer.testing import CliRunner, Result

from backoffice_simulator.chaos import malformed_message
from backoffice_simulator.cli import app
from backoffice_simulator.dlq import list_dead_letters, load_fixes, marker_topic, read_to_end, replay
from backoffice_simulator.generator import Scenario, generate
from backoffice_simulator.ledger import is_valid
from backoffice_simulator.wire import OutMessage
from service_runtime.dead_letters import dead_letter_headers

MakeTopics = Callable[..., Awaitable[list[str]]]


async def cli(*args: str) -> Result:
    """The CLI runs its own event loop (asyncio.run): give it a thread."""
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


def _payment() -> OutMessage:
    world = generate(Scenario(seed=1, accounts=1, months=2, today=date(2026, 11, 26), reference_data=False))
    return next(m for m in world.messages if m.event_type == "PaymentReported")


async def _dead_letter(
    producer: AIOKafkaProducer, source_topic: str, msg: OutMessage, reason: str, consumers: list[str]
) -> ConsumerRecord[bytes, bytes]:
    """Produce to the source topic, then dead-letter that record as each consumer would."""
    meta = await producer.send_and_wait(source_topic, value=msg.value, key=msg.key.encode())
    record: ConsumerRecord[bytes, bytes] = ConsumerRecord(
        source_topic,
        meta.partition,
        meta.offset,
        0,
        0,
        msg.key.encode(),
        msg.value,
        None,
        len(msg.key),
        len(msg.value),
        [],
    )
    for consumer in consumers:
        await producer.send_and_wait(
            f"{source_topic}.dlq",
            value=record.value,
            key=record.key,
            headers=dead_letter_headers(record, reason, consumer),
        )
    return record


async def test_list_and_replay_dead_letters_after_a_fix(
    kafka_bootstrap: str, make_topics: MakeTopics, tmp_path: Path
) -> None:
    topic = f"bosim-test-{uuid.uuid4().hex[:10]}"
    await make_topics(topic, partitions=2)
    await make_topics(f"{topic}.dlq", marker_topic(topic), partitions=1)
    payment = _payment()
    three = malformed_message(topic, payment.key, "amount_three_decimals", payment)
    letters = malformed_message(topic, payment.key, "account_with_letters", payment)
    not_json = malformed_message(topic, payment.key, "bad_json", payment)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        r1 = await _dead_letter(
            producer,
            topic,
            three,
            "validation failed: payload.amount: at most two decimals",
            ["ledger.backoffice-ingress", "calculator.billing-ingress"],
        )
        r2 = await _dead_letter(
            producer,
            topic,
            letters,
            "validation failed: payload.account_no: pattern",
            ["ledger.backoffice-ingress"],
        )
        r3 = await _dead_letter(
            producer, topic, not_json, "malformed message: Invalid JSON", ["ledger.backoffice-ingress"]
        )
        r4 = await _dead_letter(
            producer, topic, payment, "payment for an unknown service", ["ledger.backoffice-ingress"]
        )
    finally:
        await producer.stop()

    # list: one row per bad source message, with every consumer that rejected it
    groups = await list_dead_letters(kafka_bootstrap, topic)
    assert [(g.source_partition, g.source_offset) for g in groups] == sorted(
        (r.partition, r.offset) for r in (r1, r2, r3, r4)
    )
    first = next(g for g in groups if g.source_offset == r1.offset and g.source_partition == r1.partition)
    assert first.consumers == ["ledger.backoffice-ingress", "calculator.billing-ingress"]
    assert len(first.dlq_offsets) == 2 and first.reason.startswith("validation failed")
    assert first.event_type == "PaymentReported" and first.replayed is None
    assert (
        next(
            g for g in groups if g.source_offset == r3.offset and g.source_partition == r3.partition
        ).event_type
        == "(not JSON)"
    )

    result = await cli("dlq", "list", "--topic", f"{topic}.dlq", "--json", "--bootstrap", kafka_bootstrap)
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert len(listed) == 4 and {tuple(x["consumers"]) for x in listed} >= {
        ("ledger.backoffice-ingress", "calculator.billing-ingress")
    }
    table = await cli("dlq", "list", "--topic", topic, "--bootstrap", kafka_bootstrap)
    assert table.exit_code == 0 and "Dead letters (4)" in table.stdout

    # replay after a fix: merge-patch the amount, JSON-patch the account, replace the broken JSON
    fixed_payload = json.loads(payment.value)
    fixes_file = tmp_path / "fixes.json"
    fixes_file.write_text(
        json.dumps(
            {
                "fixes": [
                    {
                        "source": {"partition": r1.partition, "offset": r1.offset},
                        "merge": {"payload": {"amount": "1250.50"}},
                    },
                    {
                        "event_id": json.loads(letters.value)["event_id"],
                        "patch": [{"op": "replace", "path": "/payload/account_no", "value": payment.key}],
                    },
                    {
                        "source": {"partition": r3.partition, "offset": r3.offset},
                        "replace": {**fixed_payload, "event_id": str(uuid.uuid4())},
                    },
                ]
            }
        )
    )
    outcomes = await replay(kafka_bootstrap, topic, fixes=load_fixes(fixes_file))
    assert sorted(o.action for o in outcomes) == ["fixed", "fixed", "fixed"]
    republished = await _republished(kafka_bootstrap, topic)
    assert len(republished) == 3
    for record in republished:
        assert is_valid("backoffice.payments.v1", record.value)  # they now pass the contracts
        assert dict(record.headers)["replay.of"].decode().startswith(f"{topic}:")
    amounts = sorted(json.loads(r.value)["payload"]["amount"] for r in republished)
    assert "1250.50" in amounts
    # the parse failures kept their event ids (never marked as handled by any consumer)
    assert json.loads(three.value)["event_id"] in {json.loads(r.value)["event_id"] for r in republished}

    # the same replay again does nothing: the marker topic remembers
    again = await replay(kafka_bootstrap, topic, fixes=load_fixes(fixes_file))
    assert sorted(o.action for o in again) == ["already", "already", "already"]
    assert len(await _republished(kafka_bootstrap, topic)) == 3

    # --all: the handler-rejected one goes unchanged but with a new (deterministic) event id
    result = await cli("dlq", "replay", "--topic", topic, "--all", "--bootstrap", kafka_bootstrap)
    assert result.exit_code == 0, result.output
    republished = await _republished(kafka_bootstrap, topic)
    assert len(republished) == 4
    last = json.loads(republished[-1].value)
    assert last["payload"] == json.loads(payment.value)["payload"] and last["event_id"] != payment.event_id
    status = {
        g.source_offset: g.replayed
        for g in await list_dead_letters(kafka_bootstrap, topic)
        if g.source_partition == r4.partition
    }
    marker = status[r4.offset]
    assert marker is not None and marker["action"] == "replayed"
    result = await cli("dlq", "replay", "--topic", topic, "--all", "--bootstrap", kafka_bootstrap)
    assert result.exit_code == 0 and len(await _republished(kafka_bootstrap, topic)) == 4


async def test_a_fix_that_still_fails_the_contracts_is_not_replayed(
    kafka_bootstrap: str, make_topics: MakeTopics, tmp_path: Path
) -> None:
    topic = f"bosim-test-{uuid.uuid4().hex[:10]}"
    await make_topics(topic, f"{topic}.dlq", marker_topic(topic), partitions=1)
    payment = _payment()
    bad = malformed_message(topic, payment.key, "amount_negative", payment)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        rec = await _dead_letter(producer, topic, bad, "validation failed: payload.amount", ["x.y"])
    finally:
        await producer.stop()
    fixes = tmp_path / "f.json"
    source = {"partition": rec.partition, "offset": rec.offset}
    fixes.write_text(json.dumps([{"source": source, "merge": {"payload": {"amount": "0.00"}}}]))
    outcomes = await replay(
        kafka_bootstrap, topic, fixes=load_fixes(fixes), validate_as="backoffice.payments.v1"
    )
    assert [o.action for o in outcomes] == ["invalid"] and "contracts" in outcomes[0].detail
    result = await cli(
        "dlq",
        "replay",
        "--topic",
        topic,
        "--fix-with",
        str(fixes),
        "--validate-as",
        "backoffice.payments.v1",
        "--bootstrap",
        kafka_bootstrap,
    )
    assert result.exit_code == 2, result.output
    assert await _republished(kafka_bootstrap, topic) == []
    # a real fix, checked against the payments contract, goes
    fixes.write_text(json.dumps([{"source": source, "merge": {"payload": {"amount": "10.00"}}}]))
    outcomes = await replay(
        kafka_bootstrap, topic, fixes=load_fixes(fixes), validate_as="backoffice.payments.v1"
    )
    assert [o.action for o in outcomes] == ["fixed"]
    assert len(await _republished(kafka_bootstrap, topic)) == 1


async def _republished(bootstrap: str, topic: str) -> list[Any]:
    return [
        r for r in await read_to_end(bootstrap, topic) if any(k == "replay.of" for k, _ in r.headers or ())
    ]
