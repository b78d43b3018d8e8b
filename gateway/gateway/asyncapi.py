"""The AsyncAPI 3.0 document of the back-office contract, served at `/api/v1/asyncapi.json`.

It describes what the billing back-office, the banks and the grid company send (the `backoffice.*`
topics of shared/design/BACKOFFICE_EVENTS.md) and where the system puts what it can't apply (their
`.dlq` topics). Like the back-office simulator's full document (`backoffice-sim asyncapi`, which also
covers the services' own topics and carries seeded examples), it is generated from the contracts
package alone: channels from `contracts.topics`, messages from `contracts.registry`, payload schemas
from the pydantic models, the envelope from `contracts.envelope`. So it cannot drift from the code,
and the gateway needs nothing but `contracts` for it. A test checks both documents agree.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel

from contracts.envelope import IngressEnvelope
from contracts.registry import EventSpec, registry
from contracts.topics import INGRESS_TOPICS, TopicSpec, dead_letter_topic, topic_spec

ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING_VERSION = "0.5.0"
COMPONENT = "#/components/schemas/"
# The Kafka key of the messages that aren't about one account.
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


def _schema_of(model: type[BaseModel], prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A model's JSON schema (as input: what a producer may send), nested definitions hoisted."""
    schema = model.model_json_schema(ref_template=COMPONENT + prefix + ".{model}", mode="validation")
    defs = schema.pop("$defs", {})
    return schema, {f"{prefix}.{name}": value for name, value in defs.items()}


def _key_schema(spec: EventSpec) -> dict[str, Any]:
    if spec.event_type in INGRESS_KEYS:
        return {"type": "string", "description": f"The Kafka key: {INGRESS_KEYS[spec.event_type]}"}
    return {"type": "string", "pattern": r"^\d{10,12}$", "description": "The Kafka key: the account number"}


def _channel(topic: TopicSpec, messages: dict[str, Any]) -> dict[str, Any]:
    return {
        "address": topic.name,
        "title": topic.name,
        "description": topic.description,
        "messages": messages,
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


@cache
def build_document() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}

    envelope, defs = _schema_of(IngressEnvelope, "IngressEnvelope")
    schemas["IngressEnvelope"] = envelope
    schemas.update(defs)
    schemas["DeadLetterValue"] = {
        "description": "The original record's value, unchanged (it may not be JSON at all)",
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

    for topic in INGRESS_TOPICS:
        channel_messages: dict[str, Any] = {}
        for spec in (s for s in registry.specs() if s.topic == topic.name):
            component = f"{topic.name}.{spec.event_type}"
            payload, defs = _schema_of(spec.model, topic.name)
            schemas[component] = payload
            schemas.update(defs)
            messages[component] = {
                "name": spec.event_type,
                "title": f"{spec.event_type} v{spec.version}",
                "summary": spec.description or spec.event_type,
                "contentType": "application/json",
                "payload": {
                    "allOf": [
                        {"$ref": COMPONENT + "IngressEnvelope"},
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
                "bindings": {"kafka": {"key": _key_schema(spec), "bindingVersion": KAFKA_BINDING_VERSION}},
                "x-schema-version": spec.version,
                "x-producer": "backoffice",
            }
            channel_messages[spec.event_type] = {"$ref": f"#/components/messages/{component}"}
        channels[topic.name] = _channel(topic, channel_messages)
        operations[f"receive.{topic.name}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{topic.name}"},
            "summary": f"The system receives {topic.name}",
            "messages": [{"$ref": f"#/channels/{topic.name}/messages/{name}"} for name in channel_messages],
        }

        dlq = topic_spec(dead_letter_topic(topic.name))
        channels[dlq.name] = _channel(dlq, {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}})
        operations[f"send.{dlq.name}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{dlq.name}"},
            "summary": f"The system publishes {dlq.name}: the messages of {topic.name} it could not apply",
            "messages": [{"$ref": f"#/channels/{dlq.name}/messages/DeadLetter"}],
        }

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:kz:almatyenergosbyt:lk-portal:backoffice",
        "info": {
            "title": "Личный кабинет частного клиента: the back-office contract",
            "version": "1.0.0",
            "description": (
                "What the billing back-office, the banks and the grid company publish to the portal "
                "(`backoffice.*` topics, BACKOFFICE_EVENTS.md), and the dead-letter topics where a "
                "message the services cannot parse, validate or apply lands unchanged, with the reason "
                "in its headers. Envelope: `IngressEnvelope`; money is a string with two decimals. "
                "Generated from the contracts package."
            ),
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": dict(sorted(schemas.items())), "messages": dict(sorted(messages.items()))},
    }
