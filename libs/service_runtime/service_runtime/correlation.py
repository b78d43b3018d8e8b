"""Correlation and causation ids carried from an HTTP request or a consumed event into new events."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from asgi_correlation_id import correlation_id as request_correlation_id

# Set while a consumer handles an event, so events appended by its handler are caused by it.
event_correlation_id: ContextVar[str | None] = ContextVar("event_correlation_id", default=None)
event_causation_id: ContextVar[str | None] = ContextVar("event_causation_id", default=None)


def current_correlation_id() -> str | None:
    return event_correlation_id.get() or request_correlation_id.get()


def current_causation_id() -> str | None:
    return event_causation_id.get()


@contextmanager
def handling_event(event_id: str, correlation_id: str | None) -> Iterator[None]:
    corr_token = event_correlation_id.set(correlation_id or event_id)
    cause_token = event_causation_id.set(event_id)
    try:
        yield
    finally:
        event_correlation_id.reset(corr_token)
        event_causation_id.reset(cause_token)
