"""Fixed-window counters in Redis: failed logins and failed account links per client address.

`blocked()` answers before the call (so a blocked address never reaches the service); `failed()` counts
a failure after it. A window starts at the first failure and lasts `window_s`.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from redis.asyncio import Redis

from gateway.adapters.upstream import UpstreamProblem

T = TypeVar("T")


def retry_minutes(retry_after: int) -> int:
    """`Retry-After` seconds as whole minutes for a message (at least one)."""
    return max(1, -(-retry_after // 60))


@dataclass(frozen=True, slots=True)
class Limit:
    name: str
    max_failures: int
    window_s: int


class FailureLimiter:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}rl:"

    def _key(self, limit: Limit, subject: str) -> str:
        return f"{self._prefix}{limit.name}:{subject}"

    async def blocked(self, limit: Limit, subject: str) -> int | None:
        """Seconds until the window ends, when `subject` used up its failures; None otherwise."""
        key = self._key(limit, subject)
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(key)
        pipe.ttl(key)
        count, ttl = await pipe.execute()
        if count is not None and int(count) >= limit.max_failures:
            return max(1, int(ttl)) if ttl and int(ttl) > 0 else limit.window_s
        return None

    async def failed(self, limit: Limit, subject: str) -> None:
        key = self._key(limit, subject)
        pipe = self._redis.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, limit.window_s, nx=True)
        await pipe.execute()

    async def counting(self, limit: Limit, subject: str, call: Awaitable[T], *, status: int) -> T:
        """`call`'s answer; a service's refusal with `status` (a wrong password, an address in use, a
        wrong proof) counts as one of `subject`'s failures, and is raised on."""
        try:
            return await call
        except UpstreamProblem as problem:
            if problem.status == status:
                await self.failed(limit, subject)
            raise

    async def reset(self, limit: Limit, subject: str) -> None:
        await self._redis.delete(self._key(limit, subject))
