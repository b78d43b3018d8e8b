"""Loading the aggregates from the event store (streams of `accounts.events.v1`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from pydantic import BaseModel

from accounts.domain.account import Account, AccountEvent
from accounts.domain.links import AccountLinks, LinkEvent
from accounts.domain.requests import RequestEvent, ServiceRequest
from contracts.envelope import Envelope
from contracts.events.accounts import (
    TOPIC,
    AccountLinked,
    AccountOpened,
    AccountUnlinked,
    MeterInstalled,
    MeterReplaced,
    PayerChanged,
    ResidentsChanged,
    ServiceRequestStatusChanged,
    ServiceRequestSubmitted,
    TariffOptionChanged,
    account_links_stream,
    account_stream,
    service_request_stream,
)
from contracts.registry import registry
from service_runtime.db import Connection
from service_runtime.eventstore import ConcurrencyError, EventStore, NewEvent


def parse(envelope: Envelope) -> BaseModel:
    return registry.parse(TOPIC, envelope.event_type, envelope.schema_version, envelope.payload)


def _account_events(envelopes: Sequence[Envelope]) -> list[AccountEvent]:
    events: list[AccountEvent] = []
    for envelope in envelopes:
        event = parse(envelope)
        if not isinstance(
            event,
            AccountOpened
            | MeterInstalled
            | MeterReplaced
            | ResidentsChanged
            | TariffOptionChanged
            | PayerChanged,
        ):
            raise TypeError(f"unexpected {envelope.event_type} in {envelope.stream_id}")
        events.append(event)
    return events


async def load_account(conn: Connection, store: EventStore, account_no: str) -> Account:
    envelopes = await store.read_stream(conn, account_stream(account_no))
    return Account.replay(account_no, _account_events(envelopes))


async def load_links(conn: Connection, store: EventStore, account_no: str) -> AccountLinks:
    events: list[LinkEvent] = []
    for envelope in await store.read_stream(conn, account_links_stream(account_no)):
        event = parse(envelope)
        if not isinstance(event, AccountLinked | AccountUnlinked):
            raise TypeError(f"unexpected {envelope.event_type} in {envelope.stream_id}")
        events.append(event)
    return AccountLinks.replay(account_no, events)


async def load_request(conn: Connection, store: EventStore, request_id: str) -> ServiceRequest | None:
    events: list[RequestEvent] = []
    for envelope in await store.read_stream(conn, service_request_stream(request_id)):
        event = parse(envelope)
        if not isinstance(event, ServiceRequestSubmitted | ServiceRequestStatusChanged):
            raise TypeError(f"unexpected {envelope.event_type} in {envelope.stream_id}")
        events.append(event)
    return ServiceRequest.replay(events)


def derived_event_id(first: uuid.UUID, index: int) -> uuid.UUID:
    """The id of the index-th event appended for one back-office message (the first keeps its id)."""
    return first if index == 0 else uuid.uuid5(first, f"event-{index}")


async def append_for_message(
    conn: Connection,
    store: EventStore,
    stream_id: str,
    expected_version: int,
    events: Sequence[BaseModel],
    message_event_id: uuid.UUID,
) -> list[Envelope]:
    """Append the events one back-office message produced, with ids derived from the message's id.

    The back-office event id becomes our first event's id (the next ones are derived from it), so the
    same message can never be appended twice, even if the consumer inbox were lost: the unique event id
    stops it, and that case is recognized here and treated as already done.
    """
    if not events:
        return []
    new = [NewEvent(e, event_id=derived_event_id(message_event_id, i)) for i, e in enumerate(events)]
    try:
        return await store.append(conn, stream_id, expected_version, new)
    except ConcurrencyError:
        cur = await conn.execute("SELECT 1 FROM events WHERE event_id = %s", (message_event_id,))
        if await cur.fetchone() is not None:
            return []
        raise
