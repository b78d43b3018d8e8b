"""Customer requests (заявки), stream `service-request:{id}`.

Lifecycle, driven by the back-office: submitted → in_progress → resolved | rejected. A re-sent
status (the same status and comment as one already in the history) adds nothing; any other move
(from a final state, skipping in_progress, going back), an unknown request, or a request of another
account → `Rejected` (dead letter).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from accounts.domain.errors import Rejected
from contracts.backoffice import ServiceRequestProgressed
from contracts.events.accounts import RequestCategory, ServiceRequestStatusChanged, ServiceRequestSubmitted

RequestEvent = ServiceRequestSubmitted | ServiceRequestStatusChanged

TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    "submitted": frozenset({"in_progress"}),
    "in_progress": frozenset({"resolved", "rejected"}),
    "resolved": frozenset(),
    "rejected": frozenset(),
}


@dataclass(frozen=True, slots=True)
class ServiceRequest:
    request_id: str
    account_no: str
    user_id: uuid.UUID
    category: str
    text: str
    status: str = "submitted"
    comment: str = ""
    history: tuple[tuple[str, str], ...] = (("submitted", ""),)
    version: int = 1

    @classmethod
    def replay(cls, events: Iterable[RequestEvent]) -> ServiceRequest | None:
        request: ServiceRequest | None = None
        for event in events:
            if isinstance(event, ServiceRequestSubmitted):
                request = cls(event.request_id, event.account_no, event.user_id, event.category, event.text)
            elif request is not None:
                request = request.apply(event)
        return request

    def apply(self, event: ServiceRequestStatusChanged) -> ServiceRequest:
        return ServiceRequest(
            self.request_id,
            self.account_no,
            self.user_id,
            self.category,
            self.text,
            status=event.status,
            comment=event.comment,
            history=(*self.history, (event.status, event.comment)),
            version=self.version + 1,
        )


def submit(
    request_id: str, account_no: str, user_id: uuid.UUID, category: RequestCategory, text: str
) -> ServiceRequestSubmitted:
    return ServiceRequestSubmitted(
        request_id=request_id, account_no=account_no, user_id=user_id, category=category, text=text
    )


def decide_progress(
    request: ServiceRequest | None, command: ServiceRequestProgressed
) -> list[ServiceRequestStatusChanged]:
    if request is None:
        raise Rejected(f"unknown request {command.request_id}")
    if request.account_no != command.account_no:
        raise Rejected(f"request {command.request_id} belongs to another account, not {command.account_no}")
    if (command.status, command.comment) in request.history:
        return []
    if command.status not in TRANSITIONS[request.status]:
        raise Rejected(f"request {command.request_id}: {request.status} → {command.status} is not allowed")
    return [
        ServiceRequestStatusChanged(
            request_id=request.request_id,
            account_no=request.account_no,
            status=command.status,
            comment=command.comment,
        )
    ]
