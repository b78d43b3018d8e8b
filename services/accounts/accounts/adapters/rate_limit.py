"""Rate limit of linking attempts in Redis, per user and per account number, in a fixed window.

Guessing the proof is the attack, so two counters apply: one user trying many accounts, and many users
(or one with many sessions) trying one account. An attempt is counted *before* the proof is checked,
atomically (SET NX EX + INCR in one MULTI), so parallel requests cannot all slip under the limit; once
either counter is over the limit, the attempt is refused with the key's remaining time as
`Retry-After`. A successful link takes its attempt back from the account's counter (it wasn't a failed
guess) and clears the user's counter. So the counters hold failed attempts (plus refused ones).
"""

from __future__ import annotations

import uuid

from redis.asyncio import Redis

# DECR only a live key: a DECR on an expired key would recreate it without a TTL.
_GIVE_BACK = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECR', KEYS[1]) end
return 0
"""


class LinkAttemptLimiter:
    def __init__(
        self, redis: Redis, *, max_failures: int, window_s: int, prefix: str = "accounts:link-failures"
    ) -> None:
        self._redis = redis
        self._max = max_failures
        self._window = window_s
        self._prefix = prefix

    def _user_key(self, user_id: uuid.UUID) -> str:
        return f"{self._prefix}:user:{user_id}"

    def _account_key(self, account_no: str) -> str:
        return f"{self._prefix}:account:{account_no}"

    async def attempt(self, user_id: uuid.UUID, account_no: str) -> int | None:
        """Counts an attempt. None when it may go on; else the seconds until attempts are allowed again."""
        keys = (self._user_key(user_id), self._account_key(account_no))
        async with self._redis.pipeline(transaction=True) as pipe:
            for key in keys:
                pipe.set(key, 0, ex=self._window, nx=True)
                pipe.incr(key)
                pipe.ttl(key)
            results = await pipe.execute()
        counts, ttls = results[1::3], results[2::3]
        over = [int(ttl) for count, ttl in zip(counts, ttls, strict=True) if int(count) > self._max]
        if not over:
            return None
        return max(1, *(ttl if ttl > 0 else self._window for ttl in over))

    async def succeeded(self, user_id: uuid.UUID, account_no: str) -> None:
        await self._redis.delete(self._user_key(user_id))
        await self._redis.eval(_GIVE_BACK, 1, self._account_key(account_no))
