"""Run a service in-process against the real stack: its migrations on a fresh database, its API
through httpx (lifespan included), and its worker (outbox relay + consumers) as asyncio tasks.

    async with ServiceHarness(settings, app_factory, handlers) as svc:
        r = await svc.client.get("/internal/v1/...")
        await svc.wait_for(lambda: ...)

Each harness gets its own database (so tests never see each other's read models) and unique consumer
group ids. The Kafka topics are the real, shared ones: use unique account numbers in tests.
`runner_class` runs the consumers with a subclass of the runtime's ConsumerRunner, as a service's
`WorkerSpec.runner_class` does (e.g. with its own event registry).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from service_runtime.consumers import ConsumerRunner, IngressHandler, Projection
from service_runtime.db import Connection, open_pool
from service_runtime.kafka import ensure_topics
from service_runtime.migrations import migrate_to_head
from service_runtime.relay import OutboxRelay
from service_runtime.settings import ServiceSettings
from tests.support.offsets import start_at_the_end
from tests.support.stack import eventually


class ServiceHarness:
    def __init__(
        self,
        settings: ServiceSettings,
        *,
        migrations_dir: Path,
        app_factory: Callable[[ServiceSettings], FastAPI] | None = None,
        handlers: Callable[[], Sequence[Projection | IngressHandler]] = lambda: (),
        relay: bool = True,
        base_url: str = "http://service.test",
        start_at_topic_end: bool = False,
        runner_class: type[ConsumerRunner] = ConsumerRunner,
    ) -> None:
        self.settings = settings
        self._migrations_dir = migrations_dir
        self._app_factory = app_factory
        self._handlers = handlers
        self._with_relay = relay
        self._base_url = base_url
        # The shared topics keep every earlier test's events: a test that only needs what it produces
        # itself can skip that history (its consumers start at the current end of each topic).
        self._start_at_topic_end = start_at_topic_end
        # The consumer runner, as the service's WorkerSpec.runner_class names it.
        self._runner_class = runner_class
        # Unique group ids: a harness must not share Kafka consumer groups with another test or the stack.
        self.instance = uuid.uuid4().hex[:8]
        self.pool: AsyncConnectionPool[Connection]
        self.client: httpx.AsyncClient
        self.app: FastAPI | None = None
        self.runners: list[ConsumerRunner] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._lifespan: contextlib.AbstractAsyncContextManager[Any] | None = None
        self._relay: OutboxRelay | None = None

    async def __aenter__(self) -> ServiceHarness:
        s = self.settings
        await asyncio.to_thread(migrate_to_head, self._migrations_dir, s.dsn)
        await ensure_topics(s.kafka_bootstrap_servers, partition_overrides=s.kafka_topic_partitions)
        self.pool = await open_pool(s.dsn, max_size=6, name=f"harness-{s.service_name}")
        if self._start_at_topic_end:
            await start_at_the_end(
                s.dsn, s.kafka_bootstrap_servers, f"{s.service_name}-{self.instance}", self._handlers()
            )
        self.start_worker()
        if self._app_factory is not None:
            self.app = self._app_factory(s)
            self._lifespan = self.app.router.lifespan_context(self.app)
            await self._lifespan.__aenter__()
            transport = httpx.ASGITransport(app=self.app)
            self.client = httpx.AsyncClient(transport=transport, base_url=self._base_url)
        return self

    def start_worker(self) -> None:
        s = self.settings
        if self._with_relay:
            self._relay = OutboxRelay(
                self.pool, s.dsn, s.kafka_bootstrap_servers, service=s.service_name, idle_wait_s=0.1
            )
            self._tasks.append(asyncio.create_task(self._relay.run()))
        self.runners = [
            self._runner_class(
                handler,
                self.pool,
                s.kafka_bootstrap_servers,
                service=f"{s.service_name}-{self.instance}",
                batch_size=s.consumer_batch_size,
            )
            for handler in self._handlers()
        ]
        self._tasks += [asyncio.create_task(r.run()) for r in self.runners]

    async def stop_worker(self) -> None:
        """Stops relay and consumers (as a crash would, mid-whatever); `start_worker()` resumes them."""
        for runner in self.runners:
            runner.stop()
        if self._relay is not None:
            self._relay.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        self.runners = []

    async def wait_for(self, check: Callable[[], Awaitable[bool]], timeout_s: float = 60.0) -> None:
        await eventually(check, timeout_s=timeout_s)

    async def fetch(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(query, params)  # type: ignore[arg-type]
            return await cur.fetchall()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._app_factory is not None:
            await self.client.aclose()
            if self._lifespan is not None:
                await self._lifespan.__aexit__(None, None, None)
        await self.stop_worker()
        await self.pool.close()
