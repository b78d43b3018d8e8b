"""Brute-force protection in Redis: failed logins counted per e-mail address and per client address.

Each counter lives `login_failure_window_s` from its first failure (a fixed window). When a counter
reaches its limit, logins for that address (or from that client) are refused with 429 and
`Retry-After` = the counter's remaining lifetime, even with the right password. A successful login
clears the e-mail's counter (not the client's: one good account must not unlock a client that is
guessing others). Keys: `P login-failures:email:{sha256(email)}`, `P login-failures:client:{address}`,
`P password-reset-requests:{sha256(email)}` (P = the Redis prefix).
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from identity.domain.emails import email_digest
from identity.settings import IdentitySettings

_FAIL = """
-- KEYS: counters. ARGV: 1 window seconds. Returns {count, ttl} per key.
local out = {}
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('EXPIRE', key, ARGV[1]) end
  local ttl = redis.call('TTL', key)
  if ttl < 0 then redis.call('EXPIRE', key, ARGV[1]); ttl = tonumber(ARGV[1]) end
  table.insert(out, n)
  table.insert(out, ttl)
end
return out
"""


@dataclass(frozen=True, slots=True)
class Lockout:
    retry_after_s: int


class LoginThrottle:
    def __init__(self, redis: Redis, settings: IdentitySettings) -> None:
        self._redis = redis
        self._p = settings.redis_prefix
        self._window = settings.login_failure_window_s
        self._max_email = settings.login_max_failures_per_email
        self._max_client = settings.login_max_failures_per_client
        self._max_resets = settings.password_reset_max_per_window
        self._fail = redis.register_script(_FAIL)

    def _email_key(self, email: str) -> str:
        return f"{self._p}login-failures:email:{email_digest(email)}"

    def _client_key(self, client: str) -> str:
        return f"{self._p}login-failures:client:{client}"

    def _pairs(self, email: str, client: str) -> list[tuple[str, int]]:
        return [(self._email_key(email), self._max_email), (self._client_key(client), self._max_client)]

    async def check(self, email: str, client: str) -> Lockout | None:
        """A lockout when either counter is at its limit."""
        pairs = self._pairs(email, client)
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, _ in pairs:
                pipe.get(key)
                pipe.ttl(key)
            values = await pipe.execute()
        waits = [
            max(int(values[2 * i + 1]), 1)
            for i, (_, limit) in enumerate(pairs)
            if values[2 * i] is not None and int(values[2 * i]) >= limit
        ]
        return Lockout(max(waits)) if waits else None

    async def record_failure(self, email: str, client: str) -> Lockout | None:
        """Counts a failure; a lockout when this failure reached a limit."""
        pairs = self._pairs(email, client)
        result = await self._fail(keys=[key for key, _ in pairs], args=[self._window])
        waits = [
            max(int(result[2 * i + 1]), 1)
            for i, (_, limit) in enumerate(pairs)
            if int(result[2 * i]) >= limit
        ]
        return Lockout(max(waits)) if waits else None

    async def record_success(self, email: str) -> None:
        await self._redis.delete(self._email_key(email))

    async def allow_password_reset(self, email: str) -> bool:
        """At most `password_reset_max_per_window` reset e-mails per address per window."""
        key = f"{self._p}password-reset-requests:{email_digest(email)}"
        result = await self._fail(keys=[key], args=[self._window])
        return int(result[0]) <= self._max_resets
