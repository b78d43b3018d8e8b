"""Use cases: link an account with a proof of ownership, unlink it.

Both append to the stream `account-links:{no}` with optimistic concurrency (re-read and retry once on
ConcurrencyError) and, in the same transaction, update the `account_links` read model, so the caller's
next request already sees the change (the projection applies the same event later as a no-op: its
rows carry the stream version). Authorization everywhere reads that table.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from psycopg_pool import AsyncConnectionPool

from accounts.adapters.read_models import proof_inputs, write_link
from accounts.adapters.streams import load_links
from accounts.domain.links import AccountLinks, LinkEvent, decide_link, decide_unlink
from accounts.domain.proof import LinkProof, proof_matches
from contracts.events.accounts import AccountLinked, account_links_stream
from service_runtime.db import Connection
from service_runtime.eventstore import ConcurrencyError, EventStore, NewEvent


class AttemptLimiter(Protocol):
    async def attempt(self, user_id: uuid.UUID, account_no: str) -> int | None:
        """Count an attempt; the seconds to wait when over the limit, else None."""

    async def succeeded(self, user_id: uuid.UUID, account_no: str) -> None:
        """The attempt proved ownership: it is not a failure (and the user's failures are forgiven)."""


class LinkOutcome(enum.Enum):
    LINKED = "linked"
    NOT_PROVEN = "not_proven"
    RATE_LIMITED = "rate_limited"


@dataclass(frozen=True, slots=True)
class LinkResult:
    outcome: LinkOutcome
    retry_after: int | None = None


async def link_account(
    pool: AsyncConnectionPool[Connection],
    store: EventStore,
    limiter: AttemptLimiter,
    user_id: uuid.UUID,
    proof: LinkProof,
) -> LinkResult:
    retry_after = await limiter.attempt(user_id, proof.account_no)
    if retry_after is not None:
        return LinkResult(LinkOutcome.RATE_LIMITED, retry_after)
    # The same work for every failure reason: both queries always run, the proof is one comparison.
    async with pool.connection() as conn:
        known, payments = await proof_inputs(conn, proof.account_no)
    if not proof_matches(known, payments, proof):
        return LinkResult(LinkOutcome.NOT_PROVEN)
    await change_links(pool, store, proof.account_no, lambda links: decide_link(links, user_id))
    await limiter.succeeded(user_id, proof.account_no)
    return LinkResult(LinkOutcome.LINKED)


async def unlink_account(
    pool: AsyncConnectionPool[Connection], store: EventStore, user_id: uuid.UUID, account_no: str
) -> None:
    """Raises NotLinked when the user has no link to the account."""
    await change_links(pool, store, account_no, lambda links: decide_unlink(links, user_id))


async def change_links(
    pool: AsyncConnectionPool[Connection],
    store: EventStore,
    account_no: str,
    decide: Callable[[AccountLinks], Sequence[LinkEvent]],
) -> None:
    stream = account_links_stream(account_no)
    for attempt in (1, 2):
        try:
            async with pool.connection() as conn, conn.transaction():
                links = await load_links(conn, store, account_no)
                events = decide(links)
                envelopes = await store.append(conn, stream, links.version, [NewEvent(e) for e in events])
                for event, envelope in zip(events, envelopes, strict=True):
                    await write_link(
                        conn,
                        account_no,
                        event.user_id,
                        isinstance(event, AccountLinked),
                        envelope.stream_version,
                        envelope.occurred_at,
                    )
            return
        except ConcurrencyError:
            if attempt == 2:
                raise
