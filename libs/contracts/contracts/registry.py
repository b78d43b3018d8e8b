"""The registry of event payload models, their schema versions and upcasters.

Each payload model is registered with its event type, the current schema version and the topic it is
published on. An event stored or received at an older version is brought up to the current one by
chaining upcasters (v1 → v2 → ...), so old events stay readable forever.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
ModelT = TypeVar("ModelT", bound=type[BaseModel])


class EventPayload(BaseModel):
    """Base of every payload: immutable, and unknown fields are a contract error."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class UnknownEventType(LookupError):
    pass


class UnsupportedSchemaVersion(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class EventSpec:
    event_type: str
    version: int
    model: type[BaseModel]
    topic: str
    description: str


@dataclass
class EventRegistry:
    """Payload models by (topic, event type): the back-office's `AccountOpened` and ours are different events."""

    _specs: dict[tuple[str, str], EventSpec] = field(default_factory=dict)
    _upcasters: dict[tuple[str, str, int], Upcaster] = field(default_factory=dict)
    _by_model: dict[type[BaseModel], EventSpec] = field(default_factory=dict)

    def register(self, event_type: str, *, version: int, topic: str) -> Callable[[ModelT], ModelT]:
        def decorate(model: ModelT) -> ModelT:
            if (topic, event_type) in self._specs:
                raise ValueError(f"event type {event_type!r} is registered twice on {topic}")
            if model in self._by_model:
                raise ValueError(f"{model.__name__} is registered twice")
            doc = (model.__doc__ or "").strip()
            spec = EventSpec(event_type, version, model, topic, doc)
            self._specs[(topic, event_type)] = spec
            self._by_model[model] = spec
            return model

        return decorate

    def upcaster(self, topic: str, event_type: str, *, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Register the step that turns `from_version` into `from_version + 1`."""

        def decorate(step: Upcaster) -> Upcaster:
            self._upcasters[(topic, event_type, from_version)] = step
            return step

        return decorate

    def spec(self, topic: str, event_type: str) -> EventSpec:
        try:
            return self._specs[(topic, event_type)]
        except KeyError:
            raise UnknownEventType(f"{event_type} on {topic}") from None

    def spec_of(self, payload: BaseModel) -> EventSpec:
        try:
            return self._by_model[type(payload)]
        except KeyError:
            raise UnknownEventType(f"{type(payload).__name__} is not a registered event model") from None

    def specs(self) -> list[EventSpec]:
        return sorted(self._specs.values(), key=lambda s: (s.topic, s.event_type))

    def upcast(self, topic: str, event_type: str, version: int, payload: dict[str, Any]) -> dict[str, Any]:
        spec = self.spec(topic, event_type)
        if version > spec.version or version < 1:
            raise UnsupportedSchemaVersion(f"{event_type} v{version} (current v{spec.version})")
        while version < spec.version:
            step = self._upcasters.get((topic, event_type, version))
            if step is None:
                raise UnsupportedSchemaVersion(f"no upcaster for {event_type} v{version}")
            payload = step(payload)
            version += 1
        return payload

    def parse(self, topic: str, event_type: str, version: int, payload: dict[str, Any]) -> BaseModel:
        """Validate a payload of any known version as the current model."""
        return self.spec(topic, event_type).model.model_validate(
            self.upcast(topic, event_type, version, payload)
        )


# One registry for the whole system: canonical events and back-office ingress messages alike.
registry = EventRegistry()
