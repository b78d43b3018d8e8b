"""Sessions and refresh tokens in Redis.

A session is a refresh-token family: login starts one (its id is the access token's `sid`), every
refresh rotates its token, and presenting a token that was already rotated away (a stolen copy, or a
replay) revokes the whole family. Only SHA-256 digests of refresh tokens are stored.

Keys (P = the `IDENTITY_REDIS_PREFIX` setting, "identity:" by default):

| key | type | content | TTL |
|---|---|---|---|
| `P session:{sid}` | hash | user_id, refresh (digest of the current token), created_at, expires_at, refreshed_at, client, user_agent | sliding `refresh_token_ttl_s`, never past `expires_at` |
| `P refresh:{sha256}` | hash | sid, user_id (kept after rotation, to recognise reuse) | `refresh_token_ttl_s` |
| `P user-sessions:{user_id}` | set | the user's session ids | sliding `refresh_token_ttl_s` |
| `P revoked-session:{sid}` | string "1" | **revocation flag for the gateway** | access-token lifetime + 60 s |

Access tokens live 5 minutes and are verified offline, so a revoked session's access token would still
verify until it expires: the gateway (and identity itself) refuse a token whose
`P revoked-session:{sid}` exists. Identity also requires `P session:{sid}` to exist.
The multi-key scripts assume one Redis (not a cluster), as the stack has.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum

from redis.asyncio import Redis

from identity.settings import IdentitySettings

_REFRESH = """
-- KEYS: 1 refresh:{old}, 2 session:{sid}, 3 refresh:{new}, 4 revoked-session:{sid}, 5 user-sessions:{uid}
-- ARGV: 1 old digest, 2 new digest, 3 sid, 4 now, 5 refresh ttl, 6 revoked-flag ttl
local sid = redis.call('HGET', KEYS[1], 'sid')
if not sid or sid ~= ARGV[3] then return {'unknown', ''} end
local uid = redis.call('HGET', KEYS[1], 'user_id')
if redis.call('EXISTS', KEYS[2]) == 0 then return {'revoked', uid} end
if redis.call('HGET', KEYS[2], 'refresh') ~= ARGV[1] then
  redis.call('DEL', KEYS[2])
  redis.call('SREM', KEYS[5], sid)
  redis.call('SET', KEYS[4], '1', 'EX', ARGV[6])
  return {'reused', uid}
end
local now = tonumber(ARGV[4])
local ttl = math.min(tonumber(ARGV[5]), tonumber(redis.call('HGET', KEYS[2], 'expires_at')) - now)
if ttl <= 0 then
  redis.call('DEL', KEYS[2])
  redis.call('SREM', KEYS[5], sid)
  return {'expired', uid}
end
redis.call('HSET', KEYS[2], 'refresh', ARGV[2], 'refreshed_at', ARGV[4])
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('HSET', KEYS[3], 'sid', sid, 'user_id', uid)
redis.call('EXPIRE', KEYS[3], ttl)
redis.call('EXPIRE', KEYS[5], ARGV[5])
return {'ok', uid}
"""

_REVOKE_ALL = """
-- KEYS: 1 user-sessions:{uid}.  ARGV: 1 key prefix, 2 session to keep ('' for none), 3 revoked-flag ttl
local revoked = {}
for _, sid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if sid ~= ARGV[2] then
    redis.call('DEL', ARGV[1] .. 'session:' .. sid)
    redis.call('SET', ARGV[1] .. 'revoked-session:' .. sid, '1', 'EX', ARGV[3])
    redis.call('SREM', KEYS[1], sid)
    table.insert(revoked, sid)
  end
end
return revoked
"""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class RefreshOutcome(StrEnum):
    OK = "ok"
    UNKNOWN = "unknown"  # never issued, or expired long ago
    REVOKED = "revoked"  # its session was logged out, revoked or expired
    REUSED = "reused"  # an already rotated token: the whole family is now revoked
    EXPIRED = "expired"  # the session reached its maximum age


@dataclass(frozen=True, slots=True)
class NewSession:
    session_id: str
    refresh_token: str


@dataclass(frozen=True, slots=True)
class Rotation:
    outcome: RefreshOutcome
    user_id: uuid.UUID | None
    session_id: str | None
    refresh_token: str | None  # the new one, when outcome is OK


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else value


class SessionStore:
    def __init__(self, redis: Redis, settings: IdentitySettings) -> None:
        self._redis = redis
        self._p = settings.redis_prefix
        self._refresh_ttl = settings.refresh_token_ttl_s
        self._max_age = settings.session_max_age_s
        self._flag_ttl = settings.access_token_ttl_s + 60
        self._refresh_script = redis.register_script(_REFRESH)
        self._revoke_all_script = redis.register_script(_REVOKE_ALL)

    # --- key names --------------------------------------------------------------------------------
    def session_key(self, sid: str) -> str:
        return f"{self._p}session:{sid}"

    def refresh_key(self, token_digest: str) -> str:
        return f"{self._p}refresh:{token_digest}"

    def user_sessions_key(self, user_id: uuid.UUID | str) -> str:
        return f"{self._p}user-sessions:{user_id}"

    def revoked_key(self, sid: str) -> str:
        return f"{self._p}revoked-session:{sid}"

    # --- operations -------------------------------------------------------------------------------
    async def create(self, user_id: uuid.UUID, *, client: str, user_agent: str) -> NewSession:
        sid = str(uuid.uuid4())
        token = secrets.token_urlsafe(32)
        now = int(time.time())
        ttl = min(self._refresh_ttl, self._max_age)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                self.session_key(sid),
                mapping={
                    "user_id": str(user_id),
                    "refresh": digest(token),
                    "created_at": now,
                    "refreshed_at": now,
                    "expires_at": now + self._max_age,
                    "client": client[:100],
                    "user_agent": user_agent[:300],
                },
            )
            pipe.expire(self.session_key(sid), ttl)
            pipe.hset(self.refresh_key(digest(token)), mapping={"sid": sid, "user_id": str(user_id)})
            pipe.expire(self.refresh_key(digest(token)), ttl)
            pipe.sadd(self.user_sessions_key(user_id), sid)
            pipe.expire(self.user_sessions_key(user_id), self._refresh_ttl)
            await pipe.execute()
        return NewSession(sid, token)

    async def _lookup(self, refresh_token: str) -> tuple[str | None, str | None]:
        values = await self._redis.hmget(self.refresh_key(digest(refresh_token)), ["sid", "user_id"])
        return _text(values[0]), _text(values[1])

    async def rotate(self, refresh_token: str) -> Rotation:
        sid, uid = await self._lookup(refresh_token)
        if sid is None or uid is None:
            return Rotation(RefreshOutcome.UNKNOWN, None, None, None)
        new_token = secrets.token_urlsafe(32)
        result = await self._refresh_script(
            keys=[
                self.refresh_key(digest(refresh_token)),
                self.session_key(sid),
                self.refresh_key(digest(new_token)),
                self.revoked_key(sid),
                self.user_sessions_key(uid),
            ],
            args=[
                digest(refresh_token),
                digest(new_token),
                sid,
                int(time.time()),
                self._refresh_ttl,
                self._flag_ttl,
            ],
        )
        outcome = RefreshOutcome(_text(result[0]) or "unknown")
        user_id = uuid.UUID(uid)
        return Rotation(outcome, user_id, sid, new_token if outcome is RefreshOutcome.OK else None)

    async def session_of_refresh_token(self, refresh_token: str) -> tuple[str, uuid.UUID] | None:
        sid, uid = await self._lookup(refresh_token)
        return (sid, uuid.UUID(uid)) if sid is not None and uid is not None else None

    async def is_active(self, sid: str, user_id: uuid.UUID) -> bool:
        """The session exists, belongs to the user, and carries no revocation flag."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hget(self.session_key(sid), "user_id")
            pipe.exists(self.revoked_key(sid))
            owner, revoked = await pipe.execute()
        return _text(owner) == str(user_id) and not revoked

    async def revoke(self, sid: str, user_id: uuid.UUID | None = None) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.session_key(sid))
            pipe.set(self.revoked_key(sid), "1", ex=self._flag_ttl)
            if user_id is not None:
                pipe.srem(self.user_sessions_key(user_id), sid)
            await pipe.execute()

    async def revoke_all(self, user_id: uuid.UUID, *, keep: str | None = None) -> list[str]:
        """Revokes every session of the user but `keep`; returns the revoked session ids."""
        result = await self._revoke_all_script(
            keys=[self.user_sessions_key(user_id)], args=[self._p, keep or "", self._flag_ttl]
        )
        return [s for s in (_text(v) for v in result) if s is not None]

    async def sessions_of(self, user_id: uuid.UUID) -> set[str]:
        members = await self._redis.smembers(self.user_sessions_key(user_id))
        return {s for s in (_text(m) for m in members) if s is not None}
