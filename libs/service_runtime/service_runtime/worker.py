"""A service's worker process: the outbox relay and its consumers, with a small CLI.

python -m <service>.worker run               # migrate, create topics, relay + consumers until SIGTERM
python -m <service>.worker rebuild <name>    # drop a projection; the next `run` replays it
python -m <service>.worker migrate
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from prometheus_client import start_http_server
from psycopg_pool import AsyncConnectionPool

from service_runtime.consumers import ConsumerRunner, IngressHandler, Projection
from service_runtime.db import Connection, open_pool
from service_runtime.kafka import ensure_topics
from service_runtime.logs import configure_logging
from service_runtime.migrations import migrate_to_head
from service_runtime.relay import OutboxRelay
from service_runtime.scheduling import lower_cpu_priority
from service_runtime.settings import ServiceSettings

log = logging.getLogger(__name__)


@dataclass
class WorkerSpec:
    settings: ServiceSettings
    migrations_dir: Path
    handlers: Callable[[], Sequence[Projection | IngressHandler]] = field(default=lambda: ())
    relay: bool = True
    # Other long-running loops of the worker (e.g. a mail sender), given the worker's pool.
    background: Callable[[AsyncConnectionPool[Connection]], Sequence[Coroutine[Any, Any, None]]] = field(
        default=lambda pool: ()
    )
    # The consumer runner to run the handlers with: a service that needs a subclass of the runtime's
    # names it here (the test harness takes the same option).
    runner_class: type[ConsumerRunner] = ConsumerRunner
    # The cyclic garbage collector's thresholds once the worker has started (None: Python's defaults,
    # (700, 10, 10)). See `tune_gc`.
    gc_thresholds: tuple[int, int, int] | None = None
    # A worker of background work (issuing bills after the money is posted) runs at this lower CPU
    # priority, so that it yields to the money path on a shared machine (see `scheduling`); 0: normal.
    niceness: int = 0


def tune_gc(thresholds: tuple[int, int, int] | None) -> None:
    """Make the cyclic garbage collector cheaper for a busy worker with a large heap.

    With Python's defaults a consumer that keeps many objects alive (cached aggregates, fetched
    batches) spends a large share of its CPU in the collector: every 700 allocations a young
    collection, and full collections that walk the whole heap again and again. Objects that exist
    once the worker has started are frozen (never scanned again), and a higher first threshold lets
    most short-lived objects die before any collection looks at them. Cycles are still collected."""
    if thresholds is None:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)


async def run_worker(spec: WorkerSpec) -> None:
    settings = spec.settings
    lower_cpu_priority(spec.niceness)
    await asyncio.to_thread(migrate_to_head, spec.migrations_dir, settings.dsn)
    await _ensure_topics_with_retry(settings)
    pool = await open_pool(
        settings.dsn, max_size=settings.database_pool_size, name=f"{settings.service_name}-worker"
    )
    relay = (
        OutboxRelay(
            pool,
            settings.dsn,
            settings.kafka_bootstrap_servers,
            service=settings.service_name,
            batch_size=settings.relay_batch_size,
        )
        if spec.relay
        else None
    )
    runners = [
        spec.runner_class(
            handler,
            pool,
            settings.kafka_bootstrap_servers,
            service=settings.service_name,
            batch_size=settings.consumer_batch_size,
        )
        for handler in spec.handlers()
    ]
    tune_gc(spec.gc_thresholds)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(r.run(), name=r.consumer_id) for r in runners]
    if relay is not None:
        tasks.append(asyncio.create_task(relay.run(), name="relay"))
    tasks += [asyncio.create_task(job) for job in spec.background(pool)]
    log.info(
        "worker started", extra={"consumers": [r.consumer_id for r in runners], "relay": relay is not None}
    )
    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for task in done:
        if task is not waiter and task.exception() is not None:
            log.error("worker task crashed", exc_info=task.exception())
    for runner in runners:
        runner.stop()
    if relay is not None:
        relay.stop()
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    await pool.close()


async def _ensure_topics_with_retry(settings: ServiceSettings) -> None:
    delay = 0.5
    while True:
        try:
            await ensure_topics(
                settings.kafka_bootstrap_servers, partition_overrides=settings.kafka_topic_partitions
            )
            return
        except Exception as exc:
            log.warning("kafka not reachable for topic setup; retrying", extra={"error": repr(exc)})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)


async def rebuild_projection(spec: WorkerSpec, name: str) -> None:
    settings = spec.settings
    pool = await open_pool(settings.dsn, max_size=2, name=f"{settings.service_name}-rebuild")
    try:
        matches = [h for h in spec.handlers() if h.name == name and isinstance(h, Projection)]
        if not matches:
            raise typer.BadParameter(f"no projection named {name!r}")
        runner = spec.runner_class(
            matches[0], pool, settings.kafka_bootstrap_servers, service=settings.service_name
        )
        await runner.reset_for_rebuild()
    finally:
        await pool.close()


def worker_cli(spec_factory: Callable[[], WorkerSpec]) -> typer.Typer:
    cli = typer.Typer(add_completion=False, help="The service's worker: outbox relay and consumers.")

    @cli.callback(invoke_without_command=True)
    def default(ctx: typer.Context) -> None:
        """Without a command, `run`."""
        if ctx.invoked_subcommand is None:
            run()

    @cli.command()
    def run() -> None:
        """Migrate, create missing topics, then relay and consume until SIGTERM."""
        spec = spec_factory()
        configure_logging(f"{spec.settings.service_name}-worker", spec.settings.log_level)
        if spec.settings.worker_metrics_port:
            start_http_server(spec.settings.worker_metrics_port, addr="127.0.0.1")
        asyncio.run(run_worker(spec))

    @cli.command()
    def rebuild(name: str) -> None:
        """Drop a projection and its progress. Stop the worker first: the next start replays the events."""
        spec = spec_factory()
        configure_logging(f"{spec.settings.service_name}-worker", spec.settings.log_level)
        asyncio.run(rebuild_projection(spec, name))
        typer.echo(f"projection {name} reset; it replays from the beginning on the next worker start")

    @cli.command()
    def migrate() -> None:
        """Apply the service's migrations."""
        spec = spec_factory()
        migrate_to_head(spec.migrations_dir, spec.settings.dsn)

    return cli
