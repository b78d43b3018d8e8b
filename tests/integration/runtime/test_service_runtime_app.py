"""The service app factory and migrations, against the real stack."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import uuid
from pathlib import Path
from typing import Annotated, Any

import httpx
import psycopg
import pytest
from fastapi import Depends, FastAPI

from contracts.money import Money
from contracts.registry import EventPayload, EventRegistry
from service_runtime.app import create_service_app, db_pool
from service_runtime.eventstore import EventStore, NewEvent
from service_runtime.logs import configure_logging
from service_runtime.migrations import alembic_config, migrate_to_head
from service_runtime.settings import ServiceSettings
from tests.support.stack import REPO

SERVICES = ["identity", "accounts", "ledger", "calculator", "receipts"]


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_migrates_a_fresh_database_and_again(service: str, make_database: Any) -> None:
    dsn = make_database()
    migrations = REPO / "services" / service / "migrations"
    migrate_to_head(migrations, dsn)
    migrate_to_head(migrations, dsn)  # at head already: a second start changes nothing
    with psycopg.connect(dsn) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        head = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert {"events", "outbox_relay_state", "consumer_offsets", "consumer_stream_versions"} <= tables
    from alembic.script import ScriptDirectory

    assert (
        head is not None
        and head[0] == ScriptDirectory.from_config(alembic_config(migrations, dsn)).get_current_head()
    )


class NoteTaken(EventPayload):
    amount: Money


async def test_request_id_flows_into_logs_and_event_metadata(
    make_database: Any, stack_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = make_database()
    registry = EventRegistry()
    registry.register("NoteTaken", version=1, topic="test.notes")(NoteTaken)
    store = EventStore("notes", registry)
    settings = ServiceSettings(service_name="notes", database_url=dsn)  # type: ignore[arg-type]
    log = logging.getLogger("notes")

    def routes(app: FastAPI) -> None:
        @app.post("/notes/{stream}")
        async def take(stream: str, pool: Annotated[Any, Depends(db_pool)]) -> dict[str, str]:
            log.info("taking a note")
            async with pool.connection() as conn:
                [env] = await store.append(conn, stream, 0, [NewEvent(NoteTaken(amount="1.00"))])
            return {"event_id": str(env.event_id)}

    migrations = REPO / "services" / "accounts" / "migrations"
    app = create_service_app(settings, title="notes", migrations_dir=migrations, configure=routes)
    request_id = uuid.uuid4().hex
    async with app.router.lifespan_context(app):
        configure_logging("notes")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            response = await client.post("/notes/s-1", headers={"X-Request-ID": request_id})
            assert response.status_code == 200
            assert response.headers["X-Request-ID"] == request_id
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"] == {"postgres": "ok", "kafka": "ok", "redis": "ok"}
            metrics = await client.get("/metrics")
            assert (
                'http_requests_total{method="POST",route="/notes/{stream}",service="notes",status="200"}'
                in metrics.text
            )
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT correlation_id, producer FROM events WHERE stream_id = 's-1'").fetchone()
    assert row == (request_id, "notes")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    [logged] = [line for line in lines if line["message"] == "taking a note"]
    assert logged["correlation_id"] == request_id


def test_json_log_lines_carry_the_correlation_id(capsys: pytest.CaptureFixture[str]) -> None:
    from service_runtime.correlation import handling_event

    configure_logging("svc")
    with handling_event("evt-1", "corr-9"):
        logging.getLogger("x").warning("hello")
    line = capsys.readouterr().out.strip().splitlines()[-1]
    body = json.loads(line)
    assert (
        body["message"] == "hello" and body["correlation_id"] == "corr-9" and body["causation_id"] == "evt-1"
    )
    assert body["service"] == "svc" and body["level"] == "WARNING"


def test_every_service_module_imports_and_names_its_app() -> None:
    for name in [*SERVICES, "gateway"]:
        module = importlib.import_module(f"{name}.api")
        assert isinstance(module.app, FastAPI)
    assert Path(REPO / "deploy/local/Procfile").read_text().count("uvicorn") == 6


async def test_redis_client_waits_for_a_free_connection_instead_of_failing(stack_env: dict[str, str]) -> None:
    """More concurrent commands than pooled connections queue for a connection (redis-py's default pool
    raises MaxConnectionsError on the first command past its limit: 500s under a burst of sign-ins)."""
    from service_runtime.app import waiting_redis

    settings = ServiceSettings(  # type: ignore[call-arg]
        redis_url=stack_env["REDIS_URL"], redis_max_connections=2, redis_pool_timeout_s=30
    )
    redis = waiting_redis(settings)
    key = f"test:pool:{uuid.uuid4()}"
    try:
        # Each BLPOP holds its connection until it times out: 8 of them through 2 connections.
        results = await asyncio.gather(*(redis.blpop([key], timeout=0.2) for _ in range(8)))
        assert results == [None] * 8
        assert await redis.incr(key) == 1
    finally:
        await redis.delete(key)
        await redis.aclose()
