"""The event envelope every canonical event travels in (ARCHITECTURE.md, "Event envelope").

The Kafka key is `stream_id`, so one stream's events stay in order on one partition.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


def utc_now() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel):
    """A canonical event: metadata plus a payload that its registered model validates."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    event_type: str = Field(min_length=1, max_length=100)
    schema_version: int = Field(ge=1)
    stream_id: str = Field(min_length=1, max_length=200)
    stream_version: int = Field(ge=1)
    occurred_at: AwareDatetime = Field(default_factory=utc_now)
    correlation_id: str | None = Field(default=None, max_length=200)
    causation_id: str | None = Field(default=None, max_length=200)
    producer: str = Field(min_length=1, max_length=100)
    payload: dict[str, Any]

    def to_json_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_json_bytes(cls, raw: bytes) -> Envelope:
        return cls.model_validate_json(raw)


class IngressEnvelope(BaseModel):
    """What the back-office sends (BACKOFFICE_EVENTS.md): no stream id or version, the key is the account."""

    model_config = ConfigDict(frozen=True, extra="allow")

    event_id: uuid.UUID
    event_type: str = Field(min_length=1, max_length=100)
    schema_version: int = Field(ge=1)
    occurred_at: AwareDatetime
    producer: str = Field(min_length=1, max_length=100)
    payload: dict[str, Any]
