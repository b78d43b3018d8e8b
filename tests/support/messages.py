"""Kafka messages as the producers of the services' inputs write them: back-office JSON envelopes
(BACKOFFICE_EVENTS.md) and the services' canonical envelopes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel

from contracts.backoffice import PeriodClosed
from contracts.envelope import Envelope, IngressEnvelope
from contracts.registry import registry
from service_runtime.consumers import IngressMessage


def backoffice_message(
    event_type: str,
    payload: dict[str, Any],
    event_id: uuid.UUID | str | None = None,
    *,
    occurred_at: str | None = None,
    schema_version: int = 1,
) -> bytes:
    """A back-office envelope (`occurred_at`: now, unless given)."""
    return orjson.dumps(
        {
            "event_id": str(event_id or uuid.uuid4()),
            "event_type": event_type,
            "schema_version": schema_version,
            "occurred_at": occurred_at or datetime.now(UTC).isoformat(),
            "producer": "backoffice",
            "payload": payload,
        }
    )


def canonical_envelope(stream_id: str, version: int, payload: BaseModel, producer: str) -> Envelope:
    """A service's event on its stream: the type and schema version of the payload's registration."""
    spec = registry.spec_of(payload)
    return Envelope(
        event_type=spec.event_type,
        schema_version=spec.version,
        stream_id=stream_id,
        stream_version=version,
        producer=producer,
        payload=payload.model_dump(mode="json"),
    )


def period_closed_message(period: str) -> IngressMessage:
    """The back-office's PeriodClosed as the calculator's ingress handler receives it (parsed)."""
    envelope = IngressEnvelope(
        event_id=uuid.uuid4(),
        event_type="PeriodClosed",
        schema_version=1,
        occurred_at=datetime.now(UTC),
        producer="backoffice",
        payload={"period": period},
    )
    return IngressMessage(envelope, PeriodClosed(period=period), period, "backoffice.billing.v1", 0, 0)
