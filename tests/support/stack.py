"""Pytest fixtures for tests that need the real local stack (deploy/local/stack.sh start).

Connection details come from the environment, or from `.local/stack.env` that the stack writes.
A test never skips because the stack is missing: it fails, and says how to start it.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from psycopg import sql

REPO = Path(__file__).resolve().parents[2]
STACK_ENV = REPO / ".local" / "stack.env"


def load_stack_env() -> dict[str, str]:
    values: dict[str, str] = {}
    if STACK_ENV.exists():
        for line in STACK_ENV.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                values[key.removeprefix("export ").strip()] = value.strip().strip('"').strip("'")
    return values


@pytest.fixture(scope="session")
def stack_env() -> dict[str, str]:
    for key, value in load_stack_env().items():
        os.environ.setdefault(key, value)
    missing = [k for k in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "PG_ADMIN_URL") if not os.environ.get(k)]
    if missing:
        pytest.fail(f"the local stack is not configured ({missing}); run: deploy/local/stack.sh start")
    return dict(os.environ)


@pytest.fixture(scope="session")
def kafka_bootstrap(stack_env: dict[str, str]) -> str:
    return stack_env["KAFKA_BOOTSTRAP_SERVERS"]


@pytest.fixture(scope="session")
def admin_dsn(stack_env: dict[str, str]) -> str:
    return stack_env["PG_ADMIN_URL"]


def _with_database(dsn: str, database: str) -> str:
    """The same server and credentials, another database, as a URL (what services get from the env)."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def make_database(admin_dsn: str) -> Iterator[Callable[[], str]]:
    """Creates throwaway databases (dropped at the end of the session); returns their DSNs."""
    created: list[str] = []

    def make() -> str:
        name = f"test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return _with_database(admin_dsn, name)

    yield make
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        for name in created:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
async def make_topics(kafka_bootstrap: str) -> AsyncIterator[Callable[..., Awaitable[list[str]]]]:
    """Creates uniquely named topics for one test, deleted afterwards."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    created: list[str] = []

    async def make(*names: str, partitions: int = 3) -> list[str]:
        topics = [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names]
        await admin.create_topics(topics)
        created.extend(names)
        return list(names)

    yield make
    if created:
        try:
            await admin.delete_topics(created)
        finally:
            await admin.close()
    else:
        await admin.close()


async def read_topic(bootstrap: str, topic: str, *, expect: int, timeout_s: float = 30.0) -> list[Any]:
    """Reads a topic from the beginning until `expect` records arrived (or the deadline passed)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[Any] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(records) < expect and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for recs in batch.values():
                records.extend(recs)
    finally:
        await consumer.stop()
    return records


async def read_topic_to_end(bootstrap: str, topic: str) -> list[Any]:
    """Every record on a topic up to its end offsets at call time (for finding one stream on a shared topic)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        from aiokafka.structs import TopicPartition

        partitions = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or set())]
        if not partitions:
            await consumer._client.force_metadata_update()  # every topic's metadata, not only subscribed ones
            partitions = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or set())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[Any] = []

        async def behind() -> bool:
            return any([await consumer.position(tp) < end for tp, end in ends.items()])

        while await behind():
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        return [r for r in records if r.offset < ends[TopicPartition(r.topic, r.partition)]]
    finally:
        await consumer.stop()


async def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout_s: float = 60.0, every_s: float = 0.2
) -> None:
    """Waits until `check()` is true. A deadline for progress, not a performance assertion."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"condition not reached within {timeout_s}s")
        await asyncio.sleep(every_s)


GATEWAY_URL = "http://127.0.0.1:8000"
APP_PORTS = {
    "gateway": 8000,
    "identity": 8001,
    "accounts": 8002,
    "ledger": 8003,
    "calculator": 8004,
    "receipts": 8005,
}


def _services_running() -> bool:
    pidfile = REPO / ".local" / "run" / "honcho.pid"
    return pidfile.exists() and Path(f"/proc/{pidfile.read_text().strip()}").exists()


@pytest.fixture(scope="session")
def running_services(stack_env: dict[str, str]) -> Iterator[str]:
    """All six apps and the workers, as the Procfile runs them. Stopped afterwards if this started them."""
    import subprocess

    started_here = not _services_running()
    subprocess.run([str(REPO / "deploy/local/stack.sh"), "services-start"], check=True, timeout=300)
    yield GATEWAY_URL
    if started_here:
        subprocess.run([str(REPO / "deploy/local/stack.sh"), "services-stop"], check=False, timeout=120)
