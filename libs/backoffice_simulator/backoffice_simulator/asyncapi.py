"""The AsyncAPI 3.0 document of every topic, in and out, generated from the contracts package.

The generator is `contracts.asyncapi` (the gateway's back-office document comes from it too): nothing
here is written by hand per event. Channels come from `contracts.topics` (names, partition counts,
retention), messages from `contracts.registry` (event type, schema version, topic, docstring), payload
schemas from the pydantic models, envelopes from `contracts.envelope`. A new event or topic appears in
the document as soon as it is registered, so the document cannot drift from the code. This module adds
what only the simulator knows: seeded examples, the channels' longer descriptions, the local server.

Point of view: the system's. It *receives* the back-office's `backoffice.*` topics and *sends* its
canonical `<service>.events.v1` topics and the dead-letter topics.
"""

from __future__ import annotations

import importlib
import json
from datetime import date
from typing import Any

from contracts.asyncapi import AsyncApiBuilder
from contracts.envelope import Envelope, IngressEnvelope
from contracts.registry import EventSpec, registry
from contracts.topics import ALL_TOPICS, TopicKind, TopicSpec


def _module_doc(spec: EventSpec) -> str:
    module = importlib.import_module(spec.model.__module__)
    return (module.__doc__ or "").strip()


def _example_messages(today: date) -> dict[tuple[str, str], dict[str, Any]]:
    """One real message per back-office event type, from a small deterministic seeded world."""
    from backoffice_simulator.generator import Scenario, generate

    examples: dict[tuple[str, str], dict[str, Any]] = {}
    world = generate(Scenario(seed=2026, accounts=60, months=12, today=today))
    for msg in world.messages:
        examples.setdefault((msg.topic, msg.event_type), {"key": msg.key, "document": msg.document()})
    return examples


def _description(topic: TopicSpec, specs: list[EventSpec]) -> str:
    description = topic.description
    if topic.kind is TopicKind.DEAD_LETTER:
        description += (
            ". Replays of its dead letters (backoffice-sim dlq replay) are recorded in"
            f" `{topic.name}.replayed`."
        )
    if specs and not description.endswith("."):
        description += "."
    if topic.kind is TopicKind.CANONICAL and specs:
        description += " " + _module_doc(specs[0]).split("\n\n")[0].replace("\n", " ")
    return description.strip()


def build_document(*, server: str = "127.0.0.1:9092", examples: bool = True) -> dict[str, Any]:
    builder = AsyncApiBuilder()
    builder.add_model(Envelope, "Envelope")
    builder.add_model(IngressEnvelope, "IngressEnvelope")
    samples = _example_messages(date(2026, 1, 15)) if examples else {}
    specs_by_topic: dict[str, list[EventSpec]] = {}
    for spec in registry.specs():
        specs_by_topic.setdefault(spec.topic, []).append(spec)
    for topic in ALL_TOPICS:
        builder.add_topic(
            topic, description=_description(topic, specs_by_topic.get(topic.name, [])), examples=samples
        )
    return builder.document(
        id="urn:kz:almatyenergosbyt:lk-portal:events",
        info={
            "title": "Личный кабинет частного клиента: event streams",
            "version": "1.0.0",
            "description": (
                "Every Kafka topic of the portal. The billing back-office publishes `backoffice.*` topics "
                "(BACKOFFICE_EVENTS.md); each service publishes its canonical events on "
                "`<service>.events.v1` (envelope: `Envelope`, Kafka key = `stream_id`); messages that "
                "cannot be applied go unchanged to `<topic>.dlq`. Money is a string with two decimals. "
                "Generated from the contracts package (backoffice-sim asyncapi)."
            ),
        },
        servers={
            "local": {
                "host": server,
                "protocol": "kafka",
                "description": "The local stack's broker (Apache Kafka 4, KRaft)",
            }
        },
    )


def render(document: dict[str, Any] | None = None) -> str:
    return json.dumps(document or build_document(), ensure_ascii=False, indent=2) + "\n"
