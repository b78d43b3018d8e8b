"""Ingest of `backoffice.requests.v1`: the back-office moves a customer request along its lifecycle."""

from __future__ import annotations

from typing import ClassVar

from accounts.adapters.streams import append_for_message, load_request
from accounts.domain.errors import Rejected
from accounts.domain.requests import decide_progress
from contracts import backoffice as bo
from contracts.events.accounts import service_request_stream
from service_runtime.consumers import IngressHandler, IngressMessage
from service_runtime.db import Connection
from service_runtime.dead_letters import DeadLetter
from service_runtime.eventstore import EventStore


class RequestProgressIngress(IngressHandler):
    name: ClassVar[str] = "request-ingress"
    topics: ClassVar[tuple[str, ...]] = (bo.REQUESTS,)

    def __init__(self, store: EventStore) -> None:
        self._store = store

    async def handle(self, conn: Connection, message: IngressMessage) -> None:
        command = message.payload
        if not isinstance(command, bo.ServiceRequestProgressed):
            raise DeadLetter(f"unexpected payload {type(command).__name__} on {bo.REQUESTS}")
        request = await load_request(conn, self._store, command.request_id)
        try:
            events = decide_progress(request, command)
        except Rejected as exc:
            raise DeadLetter(exc.reason) from exc
        assert request is not None
        await append_for_message(
            conn,
            self._store,
            service_request_stream(command.request_id),
            request.version,
            events,
            message.envelope.event_id,
        )
