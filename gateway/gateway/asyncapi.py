"""The AsyncAPI 3.0 document of the back-office contract, served at `/api/v1/asyncapi.json`.

It describes what the billing back-office, the banks and the grid company send (the `backoffice.*`
topics of shared/design/BACKOFFICE_EVENTS.md) and where the system puts what it can't apply (their
`.dlq` topics). Like the back-office simulator's full document (`backoffice-sim asyncapi`, which also
covers the services' own topics and carries seeded examples), it is built by `contracts.asyncapi`
from the contracts package alone: channels from `contracts.topics`, messages from `contracts.registry`,
payload schemas from the pydantic models, the envelope from `contracts.envelope`. So it cannot drift
from the code, and the gateway needs nothing but `contracts` for it. A test checks both documents agree.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from contracts.asyncapi import AsyncApiBuilder
from contracts.envelope import IngressEnvelope
from contracts.topics import INGRESS_TOPICS, dead_letter_topic, topic_spec


@cache
def build_document() -> dict[str, Any]:
    builder = AsyncApiBuilder()
    builder.add_model(IngressEnvelope, "IngressEnvelope")
    for topic in INGRESS_TOPICS:
        builder.add_topic(topic)
        dlq = topic_spec(dead_letter_topic(topic.name))
        builder.add_topic(
            dlq,
            summary=f"The system publishes {dlq.name}: the messages of {topic.name} it could not apply",
        )
    return builder.document(
        id="urn:kz:almatyenergosbyt:lk-portal:backoffice",
        info={
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
    )
