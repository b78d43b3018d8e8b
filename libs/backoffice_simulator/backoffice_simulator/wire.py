"""The wire form of a back-office message (BACKOFFICE_EVENTS.md "Envelope") and the determinism rules.

- Event ids are `uuid5(NAMESPACE, stable key)`: the same scenario yields the same ids, so a re-run is a
  redelivery that the services de-duplicate.
- `occurred_at` carries Almaty's offset: +06:00 until 2024-03-01, +05:00 since (Kazakhstan's single time
  zone). The rule is fixed here rather than read from the machine's tz database, so the bytes do not
  depend on the machine.
- JSON is compact, keys in a fixed order, UTF-8 (no \\u escapes): a message is byte-identical on re-run.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from pydantic import BaseModel

from contracts.registry import registry

NAMESPACE = uuid.UUID("6f1f8a8e-3b5e-5c1e-9a43-1b0e2f7c4d21")
PRODUCER = "backoffice"
UTC6_UNTIL = date(2024, 3, 1)
ALMATY_OLD = timezone(timedelta(hours=6))
ALMATY = timezone(timedelta(hours=5))


def event_id(key: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, key)


def almaty(day: date, at: time = time(9, 0)) -> datetime:
    """An aware Almaty wall-clock time on `day`."""
    tz = ALMATY_OLD if day < UTC6_UNTIL else ALMATY
    return datetime.combine(day, at, tzinfo=tz)


def dumps(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class OutMessage:
    """One Kafka record the simulator sends. `kind` says what it is for the chaos accounting."""

    topic: str
    key: str
    value: bytes
    event_id: str
    event_type: str
    at: datetime = field(compare=False)
    kind: str = "valid"  # valid | duplicate | resend | malformed:<kind>

    def document(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.value)
        return parsed

    def with_kind(self, kind: str) -> OutMessage:
        return OutMessage(self.topic, self.key, self.value, self.event_id, self.event_type, self.at, kind)


def envelope(
    ev_id: uuid.UUID | str,
    event_type: str,
    at: datetime,
    payload: dict[str, Any],
    *,
    schema_version: int = 1,
) -> dict[str, Any]:
    return {
        "event_id": str(ev_id),
        "event_type": event_type,
        "schema_version": schema_version,
        "occurred_at": at.isoformat(timespec="seconds"),
        "producer": PRODUCER,
        "payload": payload,
    }


def message(payload: BaseModel, *, key: str, id_key: str, at: datetime) -> OutMessage:
    """A valid message of a registered back-office model (the model validated it when it was built)."""
    spec = registry.spec_of(payload)
    ev_id = event_id(id_key)
    document = envelope(
        ev_id, spec.event_type, at, payload.model_dump(mode="json"), schema_version=spec.version
    )
    return OutMessage(spec.topic, key, dumps(document), str(ev_id), spec.event_type, at)
