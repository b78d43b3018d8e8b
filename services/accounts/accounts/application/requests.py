"""Use case: a customer submits a request (заявка) on an account they linked."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from accounts.adapters.read_models import write_request_submitted
from accounts.adapters.streams import load_request
from accounts.domain.requests import submit
from contracts.events.accounts import RequestCategory, service_request_stream
from service_runtime.db import Connection
from service_runtime.eventstore import ConcurrencyError, EventStore, NewEvent

# Request ids derived from an Idempotency-Key live in their own namespace.
_IDEMPOTENCY_NAMESPACE = uuid.UUID("7d3c1d8e-4f0a-5b7e-9a51-2f1f8f0c6a11")


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before for another request."""


@dataclass(frozen=True, slots=True)
class Submitted:
    request_id: str
    status: str


def request_id_for(user_id: uuid.UUID, account_no: str, idempotency_key: str | None) -> str:
    if idempotency_key is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(_IDEMPOTENCY_NAMESPACE, f"{user_id}:{account_no}:{idempotency_key}"))


async def submit_request(
    pool: AsyncConnectionPool[Connection],
    store: EventStore,
    *,
    user_id: uuid.UUID,
    account_no: str,
    category: RequestCategory,
    text: str,
    idempotency_key: str | None = None,
) -> Submitted:
    """Appends ServiceRequestSubmitted to `service-request:{id}` and writes the read model row at once.

    With an Idempotency-Key, a retried submission finds its stream already there and answers the same.
    """
    request_id = request_id_for(user_id, account_no, idempotency_key)
    event = submit(request_id, account_no, user_id, category, text)
    try:
        async with pool.connection() as conn, conn.transaction():
            (envelope,) = await store.append(conn, service_request_stream(request_id), 0, [NewEvent(event)])
            await write_request_submitted(
                conn,
                request_id=request_id,
                account_no=account_no,
                user_id=user_id,
                category=category,
                text=text,
                version=envelope.stream_version,
                at=envelope.occurred_at,
            )
        return Submitted(request_id, "submitted")
    except ConcurrencyError:
        if idempotency_key is None:
            raise
        async with pool.connection() as conn:
            existing = await load_request(conn, store, request_id)
        if existing is None or (existing.category, existing.text) != (category, text):
            raise IdempotencyConflict(request_id) from None
        return Submitted(request_id, existing.status)
