"""Kafka for the simulator: where the broker is, topic creation, and publishing with a progress bar."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from backoffice_simulator.wire import OutMessage
from contracts.topics import ALL_TOPICS, TopicSpec

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


def repo_root() -> Path:
    """The checkout this package lives in (libs/backoffice_simulator/backoffice_simulator/ → repo)."""
    return Path(__file__).resolve().parents[3]


def stack_env() -> dict[str, str]:
    """`.local/stack.env` of the local stack (generated, git-ignored), if there is one."""
    values: dict[str, str] = {}
    path = repo_root() / ".local" / "stack.env"
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                values[key.removeprefix("export ").strip()] = value.strip().strip('"').strip("'")
    return values


def bootstrap_servers(explicit: str | None = None) -> str:
    return (
        explicit
        or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        or stack_env().get("KAFKA_BOOTSTRAP_SERVERS")
        or DEFAULT_BOOTSTRAP
    )


async def ensure_topics(bootstrap: str, specs: Iterable[TopicSpec] = ALL_TOPICS) -> list[str]:
    """Create the contracts' topics that are missing (the services do the same at start)."""
    return await create_topics(bootstrap, [(s.name, s.partitions, s.retention_ms) for s in specs])


async def create_topics(bootstrap: str, topics: Sequence[tuple[str, int, int]]) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="backoffice-sim-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name=name,
                num_partitions=partitions,
                replication_factor=1,
                topic_configs={"retention.ms": str(retention)},
            )
            for name, partitions, retention in topics
            if name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
        return [t.name for t in missing]
    finally:
        await admin.close()


def producer(bootstrap: str, client_id: str = "backoffice-sim") -> AIOKafkaProducer:
    """Idempotent, acks=all: a retried send is written once, and the order per partition is kept."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=10,
        max_batch_size=256 * 1024,
        request_timeout_ms=30000,
    )


def progress_bar(*, disable: bool = False) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        disable=disable,
    )


async def publish(
    bootstrap: str,
    messages: Sequence[OutMessage],
    *,
    description: str = "publishing",
    show_progress: bool = True,
    batch: int = 500,
) -> int:
    """Send every message in order (per partition order holds) and wait for each acknowledgement."""
    client = producer(bootstrap)
    await client.start()
    sent = 0
    try:
        with progress_bar(disable=not show_progress) as progress:
            task = progress.add_task(description, total=len(messages), rate="")
            for start in range(0, len(messages), batch):
                chunk = messages[start : start + batch]
                futures = [await client.send(m.topic, value=m.value, key=m.key.encode()) for m in chunk]
                for future in futures:
                    await future
                sent += len(chunk)
                elapsed = progress.tasks[0].elapsed or 0.0
                rate = f"{sent / elapsed:,.0f} msg/s" if elapsed > 0 else ""
                progress.update(task, advance=len(chunk), rate=rate)
    finally:
        await client.stop()
    return sent
