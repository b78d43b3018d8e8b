"""The one place where identity's parts are wired together (API process and tests)."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from identity.adapters.keys import TokenSigner
from identity.adapters.password_hashing import Passwords
from identity.adapters.postgres import Users
from identity.adapters.sessions import SessionStore
from identity.adapters.throttle import LoginThrottle
from identity.application.service import IdentityService
from identity.settings import IdentitySettings
from service_runtime.db import Connection
from service_runtime.eventstore import EventStore


def build_service(
    settings: IdentitySettings,
    pool: AsyncConnectionPool[Connection],
    redis: Redis,
    signer: TokenSigner,
) -> IdentityService:
    return IdentityService(
        settings,
        pool,
        Users(EventStore(producer=settings.service_name)),
        Passwords(settings),
        SessionStore(redis, settings),
        LoginThrottle(redis, settings),
        signer,
    )
