"""Sessions that identity revoked, checked on every authenticated call.

Access tokens live a few minutes and are verified offline, so a token whose session was logged out,
revoked after a refresh-token reuse, or ended by a password change would still verify until it expires.
Identity marks such a session in the shared Redis (`<identity prefix>revoked-session:{sid}`, kept for the
access token's lifetime + 60 s; see services/identity/README.md), and the gateway refuses its tokens.
"""

from __future__ import annotations

from redis.asyncio import Redis


class RevokedSessions:
    def __init__(self, redis: Redis, identity_prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{identity_prefix}revoked-session:"

    async def is_revoked(self, session_id: str) -> bool:
        return bool(await self._redis.exists(f"{self._prefix}{session_id}"))
