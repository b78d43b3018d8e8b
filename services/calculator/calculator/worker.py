"""The calculator worker. `python -m calculator.worker --help`.

`run`: migrate, create missing topics, seed the tariff catalog (if its stream is empty), then run the
outbox relay and the consumers (tariff, grid-reading and period-closed ingress; the accounts
projection), the rating stream (a faust agent), the billing-run loop and the reconciler, until SIGTERM.
`rebuild accounts` drops the accounts projection (replayed from `accounts.events.v1` on the next run);
`rebuild-catalog` / `rebuild-own` rebuild the tables mirroring calculator's own streams from its event store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import typer
from prometheus_client import start_http_server
from psycopg_pool import AsyncConnectionPool

from calculator.adapters.accounts import AccountsProjection
from calculator.adapters.billing_runner import BillingRunner
from calculator.adapters.catalog import CatalogRepository
from calculator.adapters.ingress import (
    GridReadingIngress,
    ParkedGridReadings,
    PeriodClosedIngress,
    TariffIngress,
)
from calculator.adapters.own_events import OwnEvents
from calculator.adapters.rating_agent import RatingAgent, RatingStream, rating_app
from calculator.adapters.reconciler import Reconciler
from calculator.application.charges import BillingService, RatingService, ReconcileService
from calculator.settings import MIGRATIONS_DIR, CalculatorSettings
from service_runtime.consumers import IngressHandler, Projection
from service_runtime.db import Connection, open_pool
from service_runtime.eventstore import EventStore
from service_runtime.logs import configure_logging
from service_runtime.migrations import migrate_to_head
from service_runtime.worker import WorkerSpec, rebuild_projection, run_worker

log = logging.getLogger(__name__)


@dataclass
class Components:
    """Everything wired once (the one place where calculator's parts are put together)."""

    store: EventStore = field(default_factory=lambda: EventStore(producer="calculator"))

    def __post_init__(self) -> None:
        self.own = OwnEvents(self.store)
        self.catalog = CatalogRepository(self.store)
        self.rating = RatingService(self.own, self.catalog)
        self.billing = BillingService(self.own, self.catalog)
        self.reconcile = ReconcileService(self.own, self.catalog)


def handlers(
    components: Components | None = None, settings: CalculatorSettings | None = None
) -> list[Projection | IngressHandler]:
    c = components or Components()
    since = settings.ingress_since if settings is not None else None
    return [
        TariffIngress(c.catalog),
        GridReadingIngress(c.own, since),
        PeriodClosedIngress(since),
        AccountsProjection(on_meter=ParkedGridReadings(c.own)),
    ]


class Background:
    """The parts of the worker that are not Kafka→PostgreSQL consumers: the catalog seed, the rating
    stream (faust), the billing-run loop and the reconciler. Tests start it beside the ServiceHarness."""

    def __init__(
        self,
        settings: CalculatorSettings,
        pool: AsyncConnectionPool[Connection],
        components: Components | None = None,
        *,
        rating_app_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.components = c = components or Components()
        self.step = RatingStream(pool, c.rating)
        app_id = rating_app_id or settings.rating_app_id
        self.agent = RatingAgent(
            lambda: rating_app(
                app_id,
                settings.kafka_bootstrap_servers,
                self.step,
                datadir=settings.faust_data_dir / f"{app_id}-data",
            )
        )
        self.billing_runner = BillingRunner(
            pool,
            c.billing,
            batch_size=settings.billing_batch_size,
            concurrency=settings.billing_concurrency,
            progress_every=settings.billing_progress_every,
        )
        self.reconciler = Reconciler(pool, c.reconcile, c.own)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        async with self.pool.connection() as conn:
            if await self.components.catalog.ensure_seeded(conn):
                log.info("tariff catalog seeded from seed_catalog.json")
        # Kafka away at start: the agent retries in the background; billing and reconciling need only
        # PostgreSQL (their events wait in the outbox).
        self._tasks.append(asyncio.create_task(self._start_agent(), name="rating-agent-start"))
        self._tasks.append(asyncio.create_task(self.billing_runner.run(), name="billing-runner"))
        self._tasks.append(asyncio.create_task(self.reconciler.run(), name="reconciler"))

    async def _start_agent(self) -> None:
        if await self.agent.start():
            log.info("rating stream started", extra={"app_id": self.agent.app.conf.id})

    async def stop(self) -> None:
        self.billing_runner.stop()
        self.reconciler.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        with contextlib.suppress(Exception):
            await self.agent.stop()


def worker_spec(
    settings: CalculatorSettings | None = None, components: Components | None = None
) -> WorkerSpec:
    s = settings or CalculatorSettings()
    c = components or Components()
    return WorkerSpec(settings=s, migrations_dir=MIGRATIONS_DIR, handlers=lambda: handlers(c, s))


async def run_calculator_worker(settings: CalculatorSettings) -> None:
    await asyncio.to_thread(migrate_to_head, MIGRATIONS_DIR, settings.dsn)
    components = Components()
    pool = await open_pool(settings.dsn, max_size=settings.database_pool_size, name="calculator-background")
    background = Background(settings, pool, components)
    try:
        await background.start()
        await run_worker(worker_spec(settings, components))  # returns on SIGTERM/SIGINT
    finally:
        await background.stop()
        await pool.close()


async def _rebuild_own(settings: CalculatorSettings, what: Sequence[str]) -> None:
    pool = await open_pool(settings.dsn, max_size=2, name="calculator-rebuild")
    try:
        c = Components()
        async with pool.connection() as conn:
            if "catalog" in what:
                n = await c.catalog.rebuild(conn)
                typer.echo(f"tariff catalog rebuilt from {n} events")
            if "own" in what:
                n = await c.own.rebuild(conn)
                typer.echo(f"readings, charges and billed periods rebuilt from {n} events")
    finally:
        await pool.close()


cli = typer.Typer(
    add_completion=False, help="The calculator worker: relay, consumers, rating stream, billing run."
)


@cli.callback(invoke_without_command=True)
def default(ctx: typer.Context) -> None:
    """Without a command, `run`."""
    if ctx.invoked_subcommand is None:
        run()


@cli.command()
def run() -> None:
    """Migrate, create missing topics, seed the catalog, then work until SIGTERM."""
    settings = CalculatorSettings()
    configure_logging(f"{settings.service_name}-worker", settings.log_level)
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, addr="127.0.0.1")
    asyncio.run(run_calculator_worker(settings))


@cli.command()
def rebuild(name: str) -> None:
    """Drop a Kafka-fed projection (`accounts`); the next `run` replays it from the events."""
    settings = CalculatorSettings()
    configure_logging(f"{settings.service_name}-worker", settings.log_level)
    asyncio.run(rebuild_projection(worker_spec(settings), name))
    typer.echo(f"projection {name} reset; it replays from the beginning on the next worker start")


@cli.command("rebuild-catalog")
def rebuild_catalog() -> None:
    """Rebuild the tariff tables from the `tariff-catalog` stream."""
    asyncio.run(_rebuild_own(CalculatorSettings(), ["catalog"]))


@cli.command("rebuild-own")
def rebuild_own() -> None:
    """Rebuild readings, charges, reversals and billed periods from calculator's event store."""
    asyncio.run(_rebuild_own(CalculatorSettings(), ["own"]))


@cli.command()
def migrate() -> None:
    """Apply the service's migrations."""
    settings = CalculatorSettings()
    migrate_to_head(MIGRATIONS_DIR, settings.dsn)


if __name__ == "__main__":
    cli()
