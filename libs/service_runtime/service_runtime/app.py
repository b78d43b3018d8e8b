"""The FastAPI app every service starts from: lifespan (migrations, pool, Redis), health, metrics, ids.

`/healthz` is liveness (the process answers). `/readyz` checks PostgreSQL, Kafka and Redis, and answers
503 naming what is down. `/metrics` is Prometheus. Every request gets an `X-Request-ID` (kept from the
caller when it sends one), which the logs and the events appended while handling it carry.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import BlockingConnectionPool, Redis
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from service_runtime.db import Connection, open_pool
from service_runtime.health import KafkaProbe, check_postgres, check_redis
from service_runtime.logs import configure_logging
from service_runtime.migrations import migrate_to_head
from service_runtime.settings import ServiceSettings

HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests", ["service", "method", "route", "status"])
HTTP_LATENCY = Histogram("http_request_seconds", "HTTP request latency", ["service", "method", "route"])


@dataclass
class ServiceResources:
    settings: ServiceSettings
    pool: AsyncConnectionPool[Connection] | None  # None for the gateway, which owns no database
    redis: Redis
    kafka_probe: KafkaProbe


def resources(request: Request) -> ServiceResources:
    """FastAPI dependency: the process's shared resources."""
    res: ServiceResources = request.app.state.resources
    return res


def db_pool(request: Request) -> AsyncConnectionPool[Connection]:
    """FastAPI dependency: the service's PostgreSQL pool."""
    pool = resources(request).pool
    assert pool is not None, "this app was created without a database"
    return pool


class _MetricsMiddleware(BaseHTTPMiddleware):
    def __init__(self, app: Any, service: str) -> None:
        super().__init__(app)
        self._service = service

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        HTTP_LATENCY.labels(self._service, request.method, path).observe(time.perf_counter() - started)
        HTTP_REQUESTS.labels(self._service, request.method, path, str(response.status_code)).inc()
        return response


def waiting_redis(settings: ServiceSettings) -> Redis:
    """A Redis client whose pool waits up to `redis_pool_timeout_s` for a connection when all of its
    `redis_max_connections` are busy, instead of failing at once."""
    pool = BlockingConnectionPool.from_url(
        settings.redis_url.get_secret_value(),
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_pool_timeout_s,
    )
    return Redis.from_pool(pool)


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    migrations_dir: Path | None,
    uses_database: bool = True,
    configure: Callable[[FastAPI], None] | None = None,
    **fastapi_kwargs: Any,
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.service_name, settings.log_level)
        if migrations_dir is not None:
            await asyncio.to_thread(migrate_to_head, migrations_dir, settings.dsn)
        pool = (
            await open_pool(settings.dsn, max_size=settings.database_pool_size, name=settings.service_name)
            if uses_database
            else None
        )
        redis = waiting_redis(settings)
        app.state.resources = ServiceResources(
            settings, pool, redis, KafkaProbe(settings.kafka_bootstrap_servers)
        )
        try:
            yield
        finally:
            await redis.aclose()
            if pool is not None:
                await pool.close()

    app = FastAPI(title=title, lifespan=lifespan, **fastapi_kwargs)
    app.add_middleware(_MetricsMiddleware, service=settings.service_name)
    app.add_middleware(CorrelationIdMiddleware, header_name="X-Request-ID")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": settings.service_name}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        res = resources(request)
        kafka, redis = await asyncio.gather(res.kafka_probe.check(), check_redis(res.redis))
        checks = {"kafka": kafka, "redis": redis}
        if res.pool is not None:
            checks["postgres"] = await check_postgres(res.pool)
        ready = all(ok for ok, _ in checks.values())
        body = {"status": "ready" if ready else "not ready", "checks": {k: v[1] for k, v in checks.items()}}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    if configure is not None:
        configure(app)
    return app
