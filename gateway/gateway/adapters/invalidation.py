"""Events drop the composed views they make stale: a background task in the gateway process.

It reads `ledger.events.v1` (every money event changes a balance) and `accounts.events.v1` (links,
attributes, district offices) with its own consumer group, from the latest offset: the cache has a
TTL, so events missed while no gateway ran cost at most that. It never stops on a bad message, and it
reconnects when Kafka is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from gateway.adapters.cache import ViewCache

log = logging.getLogger(__name__)

LEDGER_TOPIC = "ledger.events.v1"
ACCOUNTS_TOPIC = "accounts.events.v1"
TOPICS = (LEDGER_TOPIC, ACCOUNTS_TOPIC)


async def apply_event(cache: ViewCache, topic: str, raw: bytes) -> str | None:
    """Invalidates what the event changes; returns what it did (for logs and tests)."""
    try:
        envelope: dict[str, Any] = orjson.loads(raw)
        event_type = str(envelope.get("event_type", ""))
        payload = envelope.get("payload") or {}
    except (orjson.JSONDecodeError, AttributeError):
        return None
    if not isinstance(payload, dict):
        return None
    account_no = payload.get("account_no")
    if topic == LEDGER_TOPIC:
        if account_no:
            await cache.invalidate_account(str(account_no), info=False)
            return f"balance {account_no}"
        return None
    if event_type in ("AccountLinked", "AccountUnlinked") and payload.get("user_id"):
        await cache.invalidate_user(str(payload["user_id"]))
        if account_no:
            await cache.invalidate_account(str(account_no), balance=False)
        return f"links {payload['user_id']}"
    if event_type == "DistrictOfficeChanged" and payload.get("code"):
        await cache.invalidate_office(str(payload["code"]))
        return f"office {payload['code']}"
    if event_type.startswith("ServiceRequest"):
        return None  # requests are never cached
    if account_no:
        await cache.invalidate_account(str(account_no), balance=event_type == "AccountOpened")
        return f"account {account_no}"
    return None


class CacheInvalidator:
    def __init__(self, cache: ViewCache, bootstrap_servers: str, *, group_id: str) -> None:
        self._cache = cache
        self._bootstrap = bootstrap_servers
        self._group_id = group_id
        self._stopping = asyncio.Event()
        self.ready = asyncio.Event()  # set once partitions are assigned (tests wait for it)
        self.applied = 0

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            consumer = AIOKafkaConsumer(
                *TOPICS,
                bootstrap_servers=self._bootstrap,
                group_id=self._group_id,
                client_id=f"{self._group_id}-consumer",
                enable_auto_commit=True,
                auto_commit_interval_ms=1000,
                auto_offset_reset="latest",
                isolation_level="read_committed",
                fetch_max_wait_ms=100,
                session_timeout_ms=10000,
                heartbeat_interval_ms=3000,
            )
            try:
                await consumer.start()
                backoff = 0.5
                await self._consume(consumer)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("cache invalidation consumer failed; retrying", exc_info=True)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while not self._stopping.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=500)
            if not self.ready.is_set() and consumer.assignment():
                for partition in consumer.assignment():
                    await consumer.position(partition)  # resolves "latest" now, not at the next fetch
                self.ready.set()
            for records in batch.values():
                for record in records:
                    try:
                        await apply_event(self._cache, record.topic, record.value)
                        self.applied += 1
                    except Exception:
                        log.warning("cache invalidation failed for one event", exc_info=True)
