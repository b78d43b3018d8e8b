"""Event contracts of the whole system: the envelope, the payload registry, topics and money.

Importing this package registers every event model, so the registry is complete wherever it is used.
"""

from contracts import backoffice as backoffice
from contracts import events as events
from contracts.envelope import Envelope, IngressEnvelope
from contracts.registry import EventPayload, EventRegistry, registry

__all__ = ["Envelope", "EventPayload", "EventRegistry", "IngressEnvelope", "backoffice", "events", "registry"]
