"""The AsyncAPI 3.0 document of every topic, in and out, generated from the contracts package.

Nothing here is written by hand per event: channels come from `contracts.topics` (names, partition
counts, retention), messages from `contracts.registry` (event type, schema version, topic, docstring),
payload schemas from the pydantic models, envelopes from `contracts.envelope`. A new event or topic
appears in the document as soon as it is registered, so the document cannot drift from the code.

Point of view: the system's. It *receives* the back-office's `backoffice.*` topics and *sends* its
canonical `<service>.events.v1` topics and the dead-letter topics.
"""

from __future__ import annotations

import importlib
import json
from datetime import date
from typing import Any

from pydantic import BaseModel

from contracts.envelope import Envelope, IngressEnvelope
from contracts.registry import EventSpec, registry
from contracts.topics import ALL_TOPICS, TopicKind, TopicSpec

ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING_VERSION = "0.5.0"
COMPONENT = "#/components/schemas/"

INGRESS_KEYS = {
    "TariffPublished": "the effective date (YYYY-MM-DD)",
    "VatRateChanged": "the effective date (YYYY-MM-DD)",
    "PeriodClosed": "the period (YYYY-MM)",
    "DistrictOfficeUpdated": "the office code",
}
DLQ_HEADERS = {
    "dlq.reason": "why the message could not be applied",
    "dlq.source.topic": "the topic it was read from",
    "dlq.source.partition": "its partition there",
    "dlq.source.offset": "its offset there",
    "dlq.consumer": "the consumer (service.handler) that rejected it",
    "dlq.failed_at": "when (ISO 8601, UTC)",
}


def _schema_of(model: type[BaseModel], prefix: str, mode: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A model's JSON schema with its nested definitions hoisted to components (named `prefix.Name`)."""
    schema = model.model_json_schema(ref_template=COMPONENT + prefix + ".{model}", mode=mode)  # type: ignore[arg-type]
    defs = schema.pop("$defs", {})
    return schema, {f"{prefix}.{name}": value for name, value in defs.items()}


def _add_schema(schemas: dict[str, Any], name: str, schema: dict[str, Any]) -> None:
    if name in schemas and schemas[name] != schema:
        raise ValueError(f"two different schemas named {name}")
    schemas[name] = schema


def _module_doc(spec: EventSpec) -> str:
    module = importlib.import_module(spec.model.__module__)
    return (module.__doc__ or "").strip()


def _key_schema(topic: TopicSpec, spec: EventSpec) -> dict[str, Any]:
    if topic.kind is TopicKind.INGRESS:
        if spec.event_type in INGRESS_KEYS:
            return {"type": "string", "description": f"The Kafka key: {INGRESS_KEYS[spec.event_type]}"}
        return {
            "type": "string",
            "pattern": r"^\d{10,12}$",
            "description": "The Kafka key: the account number",
        }
    return {
        "type": "string",
        "description": "The Kafka key: the envelope's `stream_id` (one stream's events stay in order on one partition)",
    }


def _example_messages(today: date) -> dict[tuple[str, str], dict[str, Any]]:
    """One real message per back-office event type, from a small deterministic seeded world."""
    from backoffice_simulator.generator import Scenario, generate

    examples: dict[tuple[str, str], dict[str, Any]] = {}
    world = generate(Scenario(seed=2026, accounts=60, months=12, today=today))
    for msg in world.messages:
        examples.setdefault((msg.topic, msg.event_type), {"key": msg.key, "document": msg.document()})
    return examples


def build_document(*, server: str = "127.0.0.1:9092", examples: bool = True) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}

    for envelope, name in ((Envelope, "Envelope"), (IngressEnvelope, "IngressEnvelope")):
        schema, defs = _schema_of(envelope, name, "validation")
        _add_schema(schemas, name, schema)
        for def_name, value in defs.items():
            _add_schema(schemas, def_name, value)
    schemas["DeadLetterValue"] = {
        "description": "The original record's value, unchanged (it may not be JSON at all)",
    }

    samples = _example_messages(date(2026, 1, 15)) if examples else {}
    specs_by_topic: dict[str, list[EventSpec]] = {}
    for spec in registry.specs():
        specs_by_topic.setdefault(spec.topic, []).append(spec)

    for topic in ALL_TOPICS:
        channel_messages: dict[str, Any] = {}
        description = topic.description
        if topic.kind is TopicKind.DEAD_LETTER:
            channel_messages["DeadLetter"] = {"$ref": "#/components/messages/DeadLetter"}
            description += (
                ". Replays of its dead letters (backoffice-sim dlq replay) are recorded in"
                f" `{topic.name}.replayed`."
            )
        for spec in specs_by_topic.get(topic.name, []):
            ingress = topic.kind is TopicKind.INGRESS
            mode = "validation" if ingress else "serialization"
            component = f"{topic.name}.{spec.event_type}"
            payload_schema, defs = _schema_of(spec.model, topic.name, mode)
            _add_schema(schemas, component, payload_schema)
            for def_name, value in defs.items():
                _add_schema(schemas, def_name, value)
            envelope_name = "IngressEnvelope" if ingress else "Envelope"
            message: dict[str, Any] = {
                "name": spec.event_type,
                "title": f"{spec.event_type} v{spec.version}",
                "summary": spec.description or spec.event_type,
                "contentType": "application/json",
                "payload": {
                    "allOf": [
                        {"$ref": COMPONENT + envelope_name},
                        {
                            "type": "object",
                            "properties": {
                                "event_type": {"const": spec.event_type},
                                "schema_version": {"const": spec.version},
                                "payload": {"$ref": COMPONENT + component},
                            },
                        },
                    ]
                },
                "bindings": {
                    "kafka": {"key": _key_schema(topic, spec), "bindingVersion": KAFKA_BINDING_VERSION}
                },
                "x-schema-version": spec.version,
            }
            if ingress:
                message["x-producer"] = "backoffice"
            sample = samples.get((topic.name, spec.event_type))
            if sample is not None:
                message["examples"] = [
                    {"name": f"seeded-{spec.event_type}", "headers": {}, "payload": sample["document"]}
                ]
                message["bindings"]["kafka"]["key"]["examples"] = [sample["key"]]
            messages[component] = message
            channel_messages[spec.event_type] = {"$ref": f"#/components/messages/{component}"}
            if not description.endswith("."):
                description += "."
        if topic.kind is TopicKind.CANONICAL and topic.name in specs_by_topic:
            description += " " + _module_doc(specs_by_topic[topic.name][0]).split("\n\n")[0].replace(
                "\n", " "
            )
        channels[topic.name] = {
            "address": topic.name,
            "title": topic.name,
            "description": description.strip(),
            "messages": channel_messages,
            "bindings": {
                "kafka": {
                    "topic": topic.name,
                    "partitions": topic.partitions,
                    "replicas": 1,
                    "topicConfiguration": {"retention.ms": topic.retention_ms},
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
        }
        if channel_messages:
            action = "receive" if topic.kind is TopicKind.INGRESS else "send"
            verb = {"receive": "The system receives", "send": "The system publishes"}[action]
            operations[f"{action}.{topic.name}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{topic.name}"},
                "summary": f"{verb} {topic.name}",
                "messages": [
                    {"$ref": f"#/channels/{topic.name}/messages/{name}"} for name in channel_messages
                ],
            }

    messages["DeadLetter"] = {
        "name": "DeadLetter",
        "title": "A message that could not be applied",
        "summary": "The original key and value, unchanged, with the reason and the origin in headers",
        "contentType": "application/octet-stream",
        "headers": {
            "type": "object",
            "properties": {h: {"type": "string", "description": d} for h, d in DLQ_HEADERS.items()},
            "required": [
                "dlq.reason",
                "dlq.source.topic",
                "dlq.source.partition",
                "dlq.source.offset",
                "dlq.consumer",
            ],
        },
        "payload": {"$ref": COMPONENT + "DeadLetterValue"},
    }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:kz:almatyenergosbyt:lk-portal:events",
        "info": {
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
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": server,
                "protocol": "kafka",
                "description": "The local stack's broker (Apache Kafka 4, KRaft)",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": dict(sorted(schemas.items())), "messages": dict(sorted(messages.items()))},
    }


def render(document: dict[str, Any] | None = None) -> str:
    return json.dumps(document or build_document(), ensure_ascii=False, indent=2) + "\n"
