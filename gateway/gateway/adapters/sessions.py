"""Web sessions of the portal in Redis.

The browser holds only an opaque random id (HttpOnly cookie). Redis holds, under HMAC(secret, id), the
CSRF token and, once logged in, the access and refresh tokens, the user's id and name, the selected
account and the language. Sessions expire after `idle_ttl_s` without a request, and in any case
`max_age_s` after they were created. A login always starts a new session (no fixation).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass
class WebSession:
    session_id: str
    csrf_token: str
    created_at: float
    user_id: str | None = None
    # Identity's session (the access token's `sid`): checked against identity's revocations per request.
    identity_sid: str | None = None
    access_token: str | None = None
    access_expires_at: float = 0.0
    refresh_token: str | None = None
    full_name: str | None = None
    email: str | None = None
    profile_fetched_at: float = 0.0
    selected_account: str | None = None
    flash: list[dict[str, str]] = field(default_factory=list)
    last_saved: float = 0.0
    # Where to go after the login (a path on this site).
    after_login: str | None = None

    @property
    def authenticated(self) -> bool:
        return self.user_id is not None and self.refresh_token is not None

    def to_json(self) -> bytes:
        data = asdict(self)
        data.pop("session_id")
        return orjson.dumps(data)

    @classmethod
    def from_json(cls, session_id: str, raw: bytes) -> WebSession:
        data: dict[str, Any] = orjson.loads(raw)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(session_id=session_id, **known)


class SessionStore:
    def __init__(self, redis: Redis, prefix: str, secret: str, *, idle_ttl_s: int, max_age_s: int) -> None:
        self._redis = redis
        self._prefix = f"{prefix}sess:"
        self._secret = secret.encode()
        self._idle = idle_ttl_s
        self._max_age = max_age_s

    def _key(self, session_id: str) -> str:
        digest = hmac.new(self._secret, session_id.encode(), hashlib.sha256).hexdigest()
        return f"{self._prefix}{digest}"

    def _ttl(self, session: WebSession) -> int:
        left = int(session.created_at + self._max_age - time.time())
        return max(1, min(self._idle, left))

    async def load(self, session_id: str | None) -> WebSession | None:
        if not session_id or len(session_id) > 100:
            return None
        raw = await self._redis.get(self._key(session_id))
        if raw is None:
            return None
        session = WebSession.from_json(session_id, raw if isinstance(raw, bytes) else raw.encode())
        if time.time() > session.created_at + self._max_age:
            await self.delete(session_id)
            return None
        return session

    def new(self) -> WebSession:
        return WebSession(session_id=new_token(), csrf_token=new_token(), created_at=time.time())

    async def save(self, session: WebSession) -> None:
        session.last_saved = time.time()
        await self._redis.set(self._key(session.session_id), session.to_json(), ex=self._ttl(session))

    def needs_touch(self, session: WebSession) -> bool:
        """The idle timeout counts from the last request: extend it at most once a minute."""
        return time.time() - session.last_saved > 60

    async def delete(self, session_id: str) -> None:
        await self._redis.delete(self._key(session_id))

    async def refresh_lock(self, session_id: str, *, timeout_s: float = 5.0) -> bool:
        """One refresh of the tokens at a time per session (identity ends a session on a reused token)."""
        return bool(await self._redis.set(f"{self._key(session_id)}:lock", b"1", nx=True, ex=int(timeout_s)))

    async def release_refresh_lock(self, session_id: str) -> None:
        await self._redis.delete(f"{self._key(session_id)}:lock")

    async def wait_for_refresh(self, session: WebSession, *, timeout_s: float = 5.0) -> WebSession | None:
        """Another request of this session is refreshing: wait for its new tokens."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            current = await self.load(session.session_id)
            if current is None or current.access_token != session.access_token:
                return current
        return None
