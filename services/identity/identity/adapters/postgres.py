"""PostgreSQL: the user streams (event store), the `users` read model, credentials, one-time tokens, mail.

The `users` read model is written in the same transaction as the events (an inline projection), because
its unique index on `lower(email)` is what makes registration and e-mail confirmation race-safe: of two
concurrent claims of one address, the second transaction fails and appends nothing. It is still a pure
function of the events: `rebuild_users` recreates it from the `user:*` streams.

`credentials` (the argon2id hash) is state, not a projection: no event carries password material.
`password_reset_tokens` and `email_change_requests` keep only SHA-256 digests of the tokens.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import errors
from pydantic import BaseModel

from contracts.envelope import Envelope
from contracts.events.identity import (
    TOPIC,
    EmailChanged,
    EmailChangeRequested,
    FullNameChanged,
    LanguageChanged,
    PasswordChanged,
    UserRegistered,
    user_stream,
)
from contracts.registry import EventPayload, registry
from identity.application.mail import ComposedMail
from identity.domain.emails import email_key
from identity.domain.user import User, fold
from service_runtime.db import Connection
from service_runtime.eventstore import EventStore, NewEvent, row_to_envelope


class EmailAlreadyUsed(Exception):
    """The unique index on lower(email) refused the address."""


@dataclass(frozen=True, slots=True)
class UserRow:
    user_id: uuid.UUID
    email: str
    email_verified: bool
    full_name: str
    language: str
    version: int


_USER_COLUMNS = "user_id, email, email_verified, full_name, language, version"


def _user_row(row: Sequence[Any]) -> UserRow:
    return UserRow(row[0], row[1], row[2], row[3], row[4], int(row[5]))


class Users:
    """The user aggregate's repository: streams in the event store, plus the read model kept in step."""

    def __init__(self, store: EventStore) -> None:
        self._store = store

    async def load(self, conn: Connection, user_id: uuid.UUID) -> User | None:
        envelopes = await self._store.read_stream(conn, user_stream(user_id))
        return fold(registry.parse(TOPIC, e.event_type, e.schema_version, e.payload) for e in envelopes)

    async def save(
        self, conn: Connection, user_id: uuid.UUID, version: int, events: list[EventPayload]
    ) -> None:
        """Appends after `version` and applies the events to the read model, in the caller's transaction.

        Raises ConcurrencyError (the stream moved) or EmailAlreadyUsed (the address is taken).
        """
        if not events:
            return
        async with conn.transaction():
            appended = await self._store.append(
                conn, user_stream(user_id), version, [NewEvent(e) for e in events]
            )
            for envelope, event in zip(appended, events, strict=True):
                await apply_to_read_model(conn, envelope, event)

    async def by_email(self, conn: Connection, email: str) -> UserRow | None:
        cur = await conn.execute(
            f"SELECT {_USER_COLUMNS} FROM users WHERE lower(email) = %s",  # noqa: S608 (constant)
            (email_key(email),),
        )
        row = await cur.fetchone()
        return _user_row(row) if row else None

    async def by_id(self, conn: Connection, user_id: uuid.UUID) -> UserRow | None:
        cur = await conn.execute(
            f"SELECT {_USER_COLUMNS} FROM users WHERE user_id = %s",  # noqa: S608 (constant)
            (user_id,),
        )
        row = await cur.fetchone()
        return _user_row(row) if row else None

    async def email_in_use(self, conn: Connection, email: str) -> bool:
        cur = await conn.execute("SELECT 1 FROM users WHERE lower(email) = %s", (email_key(email),))
        return await cur.fetchone() is not None


async def apply_to_read_model(conn: Connection, envelope: Envelope, event: BaseModel) -> None:
    """The `users` row after one event (the same rules as `identity.domain.user.evolve`)."""
    at = envelope.occurred_at
    version = envelope.stream_version
    try:
        if isinstance(event, UserRegistered):
            await conn.execute(
                "INSERT INTO users (user_id, email, email_verified, full_name, language, version,"
                " registered_at, updated_at) VALUES (%s, %s, false, %s, %s, %s, %s, %s)",
                (event.user_id, event.email, event.full_name, event.language, version, at, at),
            )
            return
        if isinstance(event, EmailChanged):
            sql = "UPDATE users SET email = %s, email_verified = true, version = %s, updated_at = %s WHERE user_id = %s"
            params: tuple[Any, ...] = (event.new_email, version, at, event.user_id)
        elif isinstance(event, PasswordChanged):
            sql = (
                "UPDATE users SET email_verified = email_verified OR %s, version = %s, updated_at = %s"
                " WHERE user_id = %s"
            )
            params = (event.via == "reset", version, at, event.user_id)
        elif isinstance(event, FullNameChanged):
            sql = "UPDATE users SET full_name = %s, version = %s, updated_at = %s WHERE user_id = %s"
            params = (event.full_name, version, at, event.user_id)
        elif isinstance(event, LanguageChanged):
            sql = "UPDATE users SET language = %s, version = %s, updated_at = %s WHERE user_id = %s"
            params = (event.language, version, at, event.user_id)
        elif isinstance(event, EmailChangeRequested):
            sql = "UPDATE users SET version = %s, updated_at = %s WHERE user_id = %s"
            params = (version, at, event.user_id)
        else:
            raise TypeError(f"not a user event: {type(event).__name__}")
        await conn.execute(sql, params)
    except errors.UniqueViolation as exc:
        raise EmailAlreadyUsed() from exc


async def rebuild_users(conn: Connection) -> int:
    """Empties `users` and replays every `user:*` stream in append order. Returns the events applied."""
    applied = 0
    async with conn.transaction():
        await conn.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        await conn.execute("DELETE FROM users")
        cur = await conn.execute(
            "SELECT event_id, event_type, schema_version, stream_id, stream_version, occurred_at,"
            " correlation_id, causation_id, producer, payload FROM events"
            " WHERE topic = %s AND stream_id LIKE 'user:%%' ORDER BY position",
            (TOPIC,),
        )
        for row in await cur.fetchall():
            envelope = row_to_envelope(row)
            event = registry.parse(TOPIC, envelope.event_type, envelope.schema_version, envelope.payload)
            await apply_to_read_model(conn, envelope, event)
            applied += 1
    return applied


# --- credentials ----------------------------------------------------------------------------------


async def password_hash(conn: Connection, user_id: uuid.UUID) -> str | None:
    cur = await conn.execute("SELECT password_hash FROM credentials WHERE user_id = %s", (user_id,))
    row = await cur.fetchone()
    return str(row[0]) if row else None


async def set_password_hash(conn: Connection, user_id: uuid.UUID, new_hash: str) -> None:
    await conn.execute(
        "INSERT INTO credentials (user_id, password_hash, changed_at) VALUES (%s, %s, now())"
        " ON CONFLICT (user_id) DO UPDATE SET password_hash = excluded.password_hash, changed_at = now()",
        (user_id, new_hash),
    )


async def rehash_password(conn: Connection, user_id: uuid.UUID, old_hash: str, new_hash: str) -> None:
    """A stronger hash of the same password (new argon2 parameters); only if nothing changed meanwhile."""
    await conn.execute(
        "UPDATE credentials SET password_hash = %s WHERE user_id = %s AND password_hash = %s",
        (new_hash, user_id, old_hash),
    )


# --- one-time tokens ------------------------------------------------------------------------------


_RESET_STATE = "SELECT user_id, used_at IS NOT NULL, expires_at <= now() FROM password_reset_tokens WHERE token_hash = %s"
_RESET_STATE_LOCKED = _RESET_STATE + " FOR UPDATE"
_CHANGE_STATE = (
    "SELECT user_id, closed_at IS NOT NULL, expires_at <= now(), new_email, change_id"
    " FROM email_change_requests WHERE token_hash = %s"
)
_CHANGE_STATE_LOCKED = _CHANGE_STATE + " FOR UPDATE"


@dataclass(frozen=True, slots=True)
class TokenState:
    user_id: uuid.UUID
    used: bool
    expired: bool
    new_email: str | None = None
    change_id: uuid.UUID | None = None


async def create_reset_token(
    conn: Connection, token_digest: str, user_id: uuid.UUID, expires_at: datetime
) -> None:
    await conn.execute(
        "INSERT INTO password_reset_tokens (token_hash, user_id, expires_at) VALUES (%s, %s, %s)",
        (token_digest, user_id, expires_at),
    )


async def reset_token_state(conn: Connection, token_digest: str, *, lock: bool = False) -> TokenState | None:
    cur = await conn.execute(_RESET_STATE_LOCKED if lock else _RESET_STATE, (token_digest,))
    row = await cur.fetchone()
    return TokenState(row[0], bool(row[1]), bool(row[2])) if row else None


async def close_reset_tokens(conn: Connection, user_id: uuid.UUID) -> None:
    """Uses up every open reset link of the user (the one just used, and any older ones)."""
    await conn.execute(
        "UPDATE password_reset_tokens SET used_at = now() WHERE user_id = %s AND used_at IS NULL", (user_id,)
    )


async def create_email_change(
    conn: Connection,
    token_digest: str,
    *,
    change_id: uuid.UUID,
    user_id: uuid.UUID,
    old_email: str,
    new_email: str,
    expires_at: datetime,
) -> None:
    """A new request supersedes the user's earlier open ones: only the latest link works."""
    await conn.execute(
        "UPDATE email_change_requests SET closed_at = now(), outcome = 'superseded'"
        " WHERE user_id = %s AND closed_at IS NULL",
        (user_id,),
    )
    await conn.execute(
        "INSERT INTO email_change_requests (token_hash, change_id, user_id, old_email, new_email, expires_at)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (token_digest, change_id, user_id, old_email, new_email, expires_at),
    )


async def email_change_state(conn: Connection, token_digest: str, *, lock: bool = False) -> TokenState | None:
    cur = await conn.execute(_CHANGE_STATE_LOCKED if lock else _CHANGE_STATE, (token_digest,))
    row = await cur.fetchone()
    return TokenState(row[0], bool(row[1]), bool(row[2]), row[3], row[4]) if row else None


async def close_email_change(conn: Connection, token_digest: str, outcome: str) -> None:
    await conn.execute(
        "UPDATE email_change_requests SET closed_at = now(), outcome = %s WHERE token_hash = %s",
        (outcome, token_digest),
    )


# --- outgoing mail --------------------------------------------------------------------------------


async def enqueue_mail(conn: Connection, mail: ComposedMail, user_id: uuid.UUID | None) -> uuid.UUID:
    """Stores a message for the worker to deliver; commits (or not) with the caller's change."""
    mail_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO outbound_mail (mail_id, kind, user_id, to_address, language, subject, text_body,"
        " html_body, sensitive) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            mail_id,
            mail.kind,
            user_id,
            mail.to,
            mail.language,
            mail.subject,
            mail.text,
            mail.html,
            mail.sensitive,
        ),
    )
    return mail_id
