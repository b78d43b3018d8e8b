"""Readiness probes of the three backing services. Each answers (ok, detail) and never raises."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaClient
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from service_runtime.db import Connection


async def check_postgres(pool: AsyncConnectionPool[Connection]) -> tuple[bool, str]:
    try:
        async with pool.connection(timeout=2) as conn:
            await conn.execute("SELECT 1")
        return True, "ok"
    except Exception as exc:
        return False, type(exc).__name__


async def check_redis(redis: Redis) -> tuple[bool, str]:
    try:
        await asyncio.wait_for(redis.ping(), 2)
        return True, "ok"
    except Exception as exc:
        return False, type(exc).__name__


class KafkaProbe:
    """Connects to the bootstrap servers; the answer is cached briefly so probes don't hammer Kafka."""

    def __init__(self, bootstrap_servers: str, cache_s: float = 3.0) -> None:
        self._bootstrap = bootstrap_servers
        self._cache_s = cache_s
        self._checked_at = 0.0
        self._last: tuple[bool, str] = (False, "not checked")

    async def check(self) -> tuple[bool, str]:
        if time.monotonic() - self._checked_at < self._cache_s:
            return self._last
        client = AIOKafkaClient(bootstrap_servers=self._bootstrap, request_timeout_ms=2000)
        try:
            await asyncio.wait_for(client.bootstrap(), 3)
            self._last = (True, "ok")
        except Exception as exc:
            self._last = (False, type(exc).__name__)
        finally:
            await client.close()
        self._checked_at = time.monotonic()
        return self._last
