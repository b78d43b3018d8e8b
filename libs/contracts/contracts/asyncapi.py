"""AsyncAPI 3.0 documents of the topics, generated from this package alone.

Nothing here is written by hand per event: channels come from `contracts.topics` (names, partition
counts, retention), messages from `contracts.registry` (event type, schema version, topic, docstring),
payload schemas from the pydantic models, envelopes from `contracts.envelope`. A new event or topic
appears in a document as soon as it is registered, so the documents cannot drift from the code.

Point of view: the system's. It *receives* the back-office's `backoffice.*` topics and *sends* its
canonical `<service>.events.v1` topics and the dead-letter topics.

Two documents are built with `AsyncApiBuilder`: the gateway's back-office contract
(`gateway.asyncapi`, served at `/api/v1/asyncapi.json`: the `backoffice.*` topics and their dead-letter
topics) and the back-office simulator's full one (`backoffice_simulator.asyncapi`, `backoffice-sim
asyncapi`: every topic, with seeded examples).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel

from contracts.registry import EventSpec, registry
from contracts.topics import TopicKind, TopicSpec

ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING_VERSION = "0.5.0"
COMPONENT = "#/components/schemas/"
# The Kafka key of the back-office messages that aren't about one account.
INGRESS_KEYS = {
    "TariffPublished": "the effective date (YYYY-MM-DD)",
    "VatRateChanged": "the effective date (YYYY-MM-DD)",
    "PeriodClosed": "the period (YYYY-MM)",
    "DistrictOfficeUpdated": "the office code",
}
# The headers `service_runtime.dead_letters` puts on a dead letter.
DLQ_HEADERS = {
    "dlq.reason": "why the message could not be applied",
    "dlq.source.topic": "the topic it was read from",
    "dlq.source.partition": "its partition there",
    "dlq.source.offset": "its offset there",
    "dlq.consumer": "the consumer (service.handler) that rejected it",
    "dlq.failed_at": "when (ISO 8601, UTC)",
}
DLQ_REQUIRED_HEADERS = [
    "dlq.reason",
    "dlq.source.topic",
    "dlq.source.partition",
    "dlq.source.offset",
    "dlq.consumer",
]

SchemaMode = Literal["validation", "serialization"]


def schema_of(model: type[BaseModel], prefix: str, mode: SchemaMode) -> tuple[dict[str, Any], dict[str, Any]]:
    """A model's JSON schema with its nested definitions hoisted to components (named `prefix.Name`)."""
    schema = model.model_json_schema(ref_template=COMPONENT + prefix + ".{model}", mode=mode)
    defs = schema.pop("$defs", {})
    return schema, {f"{prefix}.{name}": value for name, value in defs.items()}


def key_schema(topic: TopicSpec, spec: EventSpec) -> dict[str, Any]:
    """The Kafka key of `spec`'s messages on `topic`."""
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


class AsyncApiBuilder:
    """Collects channels, operations, messages and schemas, topic by topic, into one document."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}
        self.messages: dict[str, Any] = {}
        self.channels: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}

    def add_schema(self, name: str, schema: dict[str, Any]) -> None:
        if name in self.schemas and self.schemas[name] != schema:
            raise ValueError(f"two different schemas named {name}")
        self.schemas[name] = schema

    def add_model(
        self, model: type[BaseModel], name: str, mode: SchemaMode = "validation", *, prefix: str | None = None
    ) -> None:
        """A model's schema as component `name`, its nested models as `<prefix>.Model` (`prefix`: `name`)."""
        schema, defs = schema_of(model, name if prefix is None else prefix, mode)
        self.add_schema(name, schema)
        for def_name, value in defs.items():
            self.add_schema(def_name, value)

    def add_topic(
        self,
        topic: TopicSpec,
        *,
        description: str | None = None,
        summary: str | None = None,
        examples: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
    ) -> None:
        """`topic` as a channel (its registered events as messages; a dead-letter topic's: `DeadLetter`)
        and, if it has messages, the system's operation on it: receive a back-office topic, send the
        others. `examples`: `{(topic, event type): {"key": ..., "document": ...}}`, one real message each.
        """
        channel_messages: dict[str, Any] = {}
        if topic.kind is TopicKind.DEAD_LETTER:
            self._add_dead_letter()
            channel_messages["DeadLetter"] = {"$ref": "#/components/messages/DeadLetter"}
        for spec in (s for s in registry.specs() if s.topic == topic.name):
            sample = (examples or {}).get((topic.name, spec.event_type))
            component = self._add_event(topic, spec, sample)
            channel_messages[spec.event_type] = {"$ref": f"#/components/messages/{component}"}
        self.channels[topic.name] = {
            "address": topic.name,
            "title": topic.name,
            "description": topic.description if description is None else description,
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
            self.operations[f"{action}.{topic.name}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{topic.name}"},
                "summary": summary or f"{verb} {topic.name}",
                "messages": [
                    {"$ref": f"#/channels/{topic.name}/messages/{name}"} for name in channel_messages
                ],
            }

    def _add_event(self, topic: TopicSpec, spec: EventSpec, sample: Mapping[str, Any] | None) -> str:
        ingress = topic.kind is TopicKind.INGRESS
        component = f"{topic.name}.{spec.event_type}"
        self.add_model(spec.model, component, "validation" if ingress else "serialization", prefix=topic.name)
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
            "bindings": {"kafka": {"key": key_schema(topic, spec), "bindingVersion": KAFKA_BINDING_VERSION}},
            "x-schema-version": spec.version,
        }
        if ingress:
            message["x-producer"] = "backoffice"
        if sample is not None:
            message["examples"] = [
                {"name": f"seeded-{spec.event_type}", "headers": {}, "payload": sample["document"]}
            ]
            message["bindings"]["kafka"]["key"]["examples"] = [sample["key"]]
        self.messages[component] = message
        return component

    def _add_dead_letter(self) -> None:
        self.schemas["DeadLetterValue"] = {
            "description": "The original record's value, unchanged (it may not be JSON at all)",
        }
        self.messages["DeadLetter"] = {
            "name": "DeadLetter",
            "title": "A message that could not be applied",
            "summary": "The original key and value, unchanged, with the reason and the origin in headers",
            "contentType": "application/octet-stream",
            "headers": {
                "type": "object",
                "properties": {h: {"type": "string", "description": d} for h, d in DLQ_HEADERS.items()},
                "required": list(DLQ_REQUIRED_HEADERS),
            },
            "payload": {"$ref": COMPONENT + "DeadLetterValue"},
        }

    def document(
        self, *, id: str, info: dict[str, Any], servers: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        document: dict[str, Any] = {
            "asyncapi": ASYNCAPI_VERSION,
            "id": id,
            "info": info,
            "defaultContentType": "application/json",
        }
        if servers is not None:
            document["servers"] = servers
        document["channels"] = self.channels
        document["operations"] = self.operations
        document["components"] = {
            "schemas": dict(sorted(self.schemas.items())),
            "messages": dict(sorted(self.messages.items())),
        }
        return document
