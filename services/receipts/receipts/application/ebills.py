"""E-bill subscriptions: a user's address for an account's bills (one per user and account).

The `ebill_subscriptions` row and the event are written in one transaction, so the table is never behind
the stream `ebill:{account_no}:{user_id}`. Subscribing the same address again changes nothing;
subscribing another address replaces it (EBillSubscribed with the new one); unsubscribing without a
subscription changes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from contracts.events.receipts import EBillSubscribed, EBillUnsubscribed, Language, ebill_stream
from service_runtime.db import Connection
from service_runtime.eventstore import ConcurrencyError, EventStore, NewEvent

_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Subscription:
    account_no: str
    email: str
    language: str
    subscribed_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "account_no": self.account_no,
            "email": self.email,
            "language": self.language,
            "subscribed_at": self.subscribed_at.isoformat(),
        }


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def subscribe(
    pool: AsyncConnectionPool[Connection],
    store: EventStore,
    account_no: str,
    user_id: uuid.UUID,
    email: str,
    language: Language = "ru",
) -> Subscription:
    email = normalize_email(email)
    stream = ebill_stream(account_no, user_id)
    for attempt in range(_ATTEMPTS):
        async with pool.connection() as conn, conn.transaction():
            current = await _current(conn, account_no, user_id)
            if current is not None and current.email == email and current.language == language:
                return current
            now = datetime.now(UTC)
            try:
                await store.append(
                    conn,
                    stream,
                    await store.stream_version(conn, stream),
                    [
                        NewEvent(
                            EBillSubscribed(
                                account_no=account_no, user_id=user_id, email=email, language=language
                            )
                        )
                    ],
                )
            except ConcurrencyError:
                if attempt == _ATTEMPTS - 1:
                    raise
                continue
            await conn.execute(
                "INSERT INTO ebill_subscriptions (account_no, user_id, email, language, subscribed_at)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (account_no, user_id) DO UPDATE"
                " SET email = excluded.email, language = excluded.language, subscribed_at = excluded.subscribed_at",
                (account_no, user_id, email, language, now),
            )
            return Subscription(account_no, email, language, now)
    raise AssertionError("unreachable")


async def unsubscribe(
    pool: AsyncConnectionPool[Connection], store: EventStore, account_no: str, user_id: uuid.UUID
) -> bool:
    """True when a subscription ended; False when there was none."""
    stream = ebill_stream(account_no, user_id)
    for attempt in range(_ATTEMPTS):
        async with pool.connection() as conn, conn.transaction():
            current = await _current(conn, account_no, user_id)
            if current is None:
                return False
            try:
                await store.append(
                    conn,
                    stream,
                    await store.stream_version(conn, stream),
                    [
                        NewEvent(
                            EBillUnsubscribed(account_no=account_no, user_id=user_id, email=current.email)
                        )
                    ],
                )
            except ConcurrencyError:
                if attempt == _ATTEMPTS - 1:
                    raise
                continue
            await conn.execute(
                "DELETE FROM ebill_subscriptions WHERE account_no = %s AND user_id = %s",
                (account_no, user_id),
            )
            return True
    raise AssertionError("unreachable")


async def subscriptions(conn: Connection, account_no: str, user_id: uuid.UUID) -> list[Subscription]:
    current = await _current(conn, account_no, user_id, for_update=False)
    return [current] if current is not None else []


async def _current(
    conn: Connection, account_no: str, user_id: uuid.UUID, *, for_update: bool = True
) -> Subscription | None:
    lock = " FOR UPDATE" if for_update else ""
    cur = await conn.execute(
        "SELECT email, language, subscribed_at FROM ebill_subscriptions"  # noqa: S608 (constant)
        " WHERE account_no = %s AND user_id = %s" + lock,
        (account_no, user_id),
    )
    row = await cur.fetchone()
    return Subscription(account_no, row[0], row[1], row[2]) if row else None
