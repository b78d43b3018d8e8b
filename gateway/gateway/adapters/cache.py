"""The cache of composed views in Redis, invalidated by events.

Keys (all under the gateway's prefix):
- `view:accounts:{user}`   the caller's account list with balances (start page, GET /accounts)
- `view:account:{no}`      one account's info (header, right panel, GET /accounts/{no})
- `view:balance:{no}`      one account's balance from the ledger
- `links:{user}`           the set of accounts the user linked (the gateway's own 404 check)
- `idx:users:{no}`         users whose cached views include account `no` (to invalidate them)
- `idx:office:{code}`      accounts whose cached info embeds district office `code`
- `ver:user:{user}`, `ver:account:{no}`   bumped by every invalidation

A fill reads the version first and writes only if it hasn't moved (a Lua compare-and-set), so a slow
fill that raced an invalidation never stores what the event made stale.

The services' read models are projections of the same events the gateway consumes, so the gateway
may hear of an event before the service's own read model applied it. An invalidation therefore also
marks the account (or user) "hot" for `hot_window_s`: while hot, reads go to the service every time
and nothing is cached, so the first fill after the window sees the settled read model.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import orjson
from redis.asyncio import Redis

T = TypeVar("T")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# KEYS: the value's key, its version key, then the "hot" markers that forbid caching now.
_SET_IF_VERSION = """
local current = redis.call('GET', KEYS[2])
if not ((current == false and ARGV[2] == '') or current == ARGV[2]) then return 0 end
for i = 3, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[3]))
return 1
"""


class ViewCache:
    def __init__(
        self, redis: Redis, prefix: str, *, ttl_s: int, links_ttl_s: int, hot_window_s: int = 10
    ) -> None:
        self._redis = redis
        self._p = f"{prefix}cache:"
        self._ttl = ttl_s
        self._links_ttl = links_ttl_s
        self._hot = hot_window_s
        self._cas = redis.register_script(_SET_IF_VERSION)

    # --- keys ------------------------------------------------------------------------------------
    def accounts_key(self, user_id: str) -> str:
        return f"{self._p}view:accounts:{user_id}"

    def account_key(self, account_no: str) -> str:
        return f"{self._p}view:account:{account_no}"

    def balance_key(self, account_no: str) -> str:
        return f"{self._p}view:balance:{account_no}"

    def links_key(self, user_id: str) -> str:
        return f"{self._p}links:{user_id}"

    def _users_of(self, account_no: str) -> str:
        return f"{self._p}idx:users:{account_no}"

    def _accounts_of_office(self, code: str) -> str:
        return f"{self._p}idx:office:{code}"

    def user_version_key(self, user_id: str) -> str:
        return f"{self._p}ver:user:{user_id}"

    def account_version_key(self, account_no: str) -> str:
        return f"{self._p}ver:account:{account_no}"

    def hot_account_key(self, account_no: str) -> str:
        return f"{self._p}hot:account:{account_no}"

    def hot_user_key(self, user_id: str) -> str:
        return f"{self._p}hot:user:{user_id}"

    # --- read-through --------------------------------------------------------------------------------
    async def get_or_fill(
        self,
        key: str,
        version_key: str,
        fill: Callable[[], Awaitable[tuple[T, bool]]],
        *,
        hot_keys: Callable[[T], list[str]] = lambda _value: [],
        ttl_s: int | None = None,
    ) -> T:
        """The cached value, or `fill()`'s; `fill` returns (value, cacheable). `hot_keys(value)` names the
        markers that forbid storing it."""
        raw, version = await self._redis.mget([key, version_key])
        if raw is not None:
            value: T = orjson.loads(raw)
            return value
        value, cacheable = await fill()
        if cacheable:
            await self._cas(
                keys=[key, version_key, *hot_keys(value)],
                args=[orjson.dumps(value), _text(version) if version else "", ttl_s or self._ttl],
            )
        return value

    async def remember_users_of(self, account_nos: Iterable[str], user_id: str) -> None:
        """Before a user's view that includes these accounts is filled: so their events find the user."""
        pipe = self._redis.pipeline(transaction=False)
        for no in account_nos:
            pipe.sadd(self._users_of(no), user_id)
            pipe.expire(self._users_of(no), self._ttl * 4)
        await pipe.execute()

    async def remember_office(self, code: str, account_no: str) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.sadd(self._accounts_of_office(code), account_no)
        pipe.expire(self._accounts_of_office(code), self._ttl * 4)
        await pipe.execute()

    async def links(self, user_id: str) -> set[str] | None:
        raw = await self._redis.get(self.links_key(user_id))
        return set(orjson.loads(raw)) if raw is not None else None

    async def store_links(self, user_id: str, version: str, account_nos: list[str]) -> None:
        await self._cas(
            keys=[self.links_key(user_id), self.user_version_key(user_id), self.hot_user_key(user_id)],
            args=[orjson.dumps(sorted(account_nos)), version, self._links_ttl],
        )

    async def user_version(self, user_id: str) -> str:
        raw = await self._redis.get(self.user_version_key(user_id))
        return _text(raw) if raw else ""

    # --- invalidation ------------------------------------------------------------------------------
    async def invalidate_user(self, user_id: str) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(self.hot_user_key(user_id), b"1", ex=self._hot)
        pipe.incr(self.user_version_key(user_id))
        pipe.expire(self.user_version_key(user_id), self._ttl * 4)
        pipe.delete(self.accounts_key(user_id), self.links_key(user_id))
        await pipe.execute()

    async def invalidate_account(self, account_no: str, *, balance: bool = True, info: bool = True) -> int:
        """Drops the account's views and the lists of every user that includes it; returns how many users."""
        members: set[bytes | str] = await self._redis.smembers(self._users_of(account_no))
        users = [_text(u) for u in members]
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(self.hot_account_key(account_no), b"1", ex=self._hot)
        pipe.incr(self.account_version_key(account_no))
        pipe.expire(self.account_version_key(account_no), self._ttl * 4)
        if balance:
            pipe.delete(self.balance_key(account_no))
        if info:
            pipe.delete(self.account_key(account_no))
        for user in users:
            pipe.incr(self.user_version_key(user))
            pipe.expire(self.user_version_key(user), self._ttl * 4)
            pipe.delete(self.accounts_key(user))
        await pipe.execute()
        return len(users)

    async def invalidate_office(self, code: str) -> None:
        members: set[bytes | str] = await self._redis.smembers(self._accounts_of_office(code))
        for no in members:
            await self.invalidate_account(_text(no), balance=False)

    async def peek(self, key: str) -> Any:
        """For tests and diagnostics: the cached value or None."""
        raw = await self._redis.get(key)
        return orjson.loads(raw) if raw is not None else None
