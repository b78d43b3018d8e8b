"""Every published event schema is snapshotted: an accidental change fails here.

A deliberate change: bump the event's version, add an upcaster for the old one, then refresh the
snapshots with `UPDATE_SCHEMA_SNAPSHOTS=1 uv run pytest tests/contracts`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import contracts
from contracts.registry import EventPayload, EventRegistry, UnsupportedSchemaVersion
from contracts.topics import ALL_TOPICS

SNAPSHOTS = Path(contracts.__file__).parent / "schemas"
SPECS = contracts.registry.specs()


def snapshot_name(topic: str, event_type: str, version: int) -> str:
    return f"{topic}/{event_type}.v{version}.json"


@pytest.mark.parametrize("spec", SPECS, ids=[f"{s.topic}:{s.event_type}" for s in SPECS])
def test_schema_matches_its_snapshot(spec: contracts.registry.EventSpec) -> None:
    schema = spec.model.model_json_schema(mode="validation")
    path = SNAPSHOTS / snapshot_name(spec.topic, spec.event_type, spec.version)
    rendered = json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_SCHEMA_SNAPSHOTS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered, encoding="utf-8")
    assert path.exists(), f"no snapshot for {spec.event_type} v{spec.version}: new events need one"
    assert path.read_text(encoding="utf-8") == rendered, (
        f"the published schema of {spec.event_type} v{spec.version} changed: "
        "bump its version and add an upcaster instead of changing it in place"
    )


def test_every_snapshot_still_has_its_event() -> None:
    """Dropping an event (or a version) silently would strand old events: each snapshot needs its model."""
    live = {snapshot_name(s.topic, s.event_type, s.version) for s in SPECS}
    on_disk = {str(p.relative_to(SNAPSHOTS)) for p in SNAPSHOTS.rglob("*.json")}
    assert on_disk == live


def test_every_event_is_on_a_declared_topic() -> None:
    declared = {t.name for t in ALL_TOPICS}
    assert {s.topic for s in SPECS} <= declared


def test_upcasters_bring_old_versions_to_the_current_model() -> None:
    registry = EventRegistry()

    @registry.register("MeterRead", version=3, topic="t")
    class MeterRead(EventPayload):
        value: str
        unit: str

    @registry.upcaster("t", "MeterRead", from_version=1)
    def v1_to_v2(payload: dict[str, object]) -> dict[str, object]:
        return {"value": str(payload["reading"])}

    @registry.upcaster("t", "MeterRead", from_version=2)
    def v2_to_v3(payload: dict[str, object]) -> dict[str, object]:
        return {**payload, "unit": "kWh"}

    assert registry.parse("t", "MeterRead", 1, {"reading": 42}) == MeterRead(value="42", unit="kWh")
    assert registry.parse("t", "MeterRead", 3, {"value": "1", "unit": "Wh"}) == MeterRead(
        value="1", unit="Wh"
    )
    with pytest.raises(UnsupportedSchemaVersion):
        registry.parse("t", "MeterRead", 4, {})
