"""The ledger worker: its outbox relay and consumers. `python -m ledger.worker --help`.

python -m ledger.worker run                       # migrate, then relay + consumers until SIGTERM
python -m ledger.worker rebuild ledger-periods    # refold a read model from the event store, now
python -m ledger.worker rebuild ledger-payments
python -m ledger.worker rebuild account-links     # emptied; replayed from accounts.events.v1 on run
python -m ledger.worker verify                    # do the read models equal the folds of the store?
python -m ledger.worker parked [--stale-days N]   # what waits, for what, since when
python -m ledger.worker migrate
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import typer

from ledger.adapters.dead_letters import DeadLetterSender
from ledger.adapters.ingress import BackofficeIngress, UpstreamIngress
from ledger.adapters.projections import AccountLinksProjection, LedgerReadModels
from ledger.adapters.rebuild import REBUILDERS, RebuildStats, rebuild_from_store, verify_read_models
from ledger.adapters.streams import AggregateCache, StoreConfig
from ledger.settings import MIGRATIONS_DIR, LedgerSettings
from service_runtime.consumers import IngressHandler, Projection
from service_runtime.db import open_pool
from service_runtime.logs import configure_logging
from service_runtime.migrations import migrate_to_head
from service_runtime.worker import WorkerSpec, rebuild_projection, run_worker, tune_gc


def build_handlers(settings: LedgerSettings) -> list[Projection | IngressHandler]:
    config = StoreConfig(
        topic=settings.events_topic,
        producer=settings.service_name,
        inline_read_models=settings.inline_read_models,
    )
    cache = AggregateCache(settings.aggregate_cache_events)  # shared by both inputs
    dead_letters = DeadLetterSender(settings.kafka_bootstrap_servers, f"{settings.service_name}.parked")
    inputs = settings.ingress_consumers  # runners of one handler share its group's partitions
    every: list[Projection | IngressHandler] = [
        *[BackofficeIngress(config, dead_letters, cache=cache)] * inputs,
        *[UpstreamIngress(config, dead_letters, cache=cache)] * inputs,
        AccountLinksProjection(),
    ]
    if not settings.inline_read_models:  # the read models from the ledger's topic instead
        every.insert(-1, LedgerReadModels(topics=(settings.events_topic,)))
    wanted = {name.strip() for name in settings.worker_handlers.split(",") if name.strip()}
    if wanted == {"none"}:  # e.g. a process that only relays
        return []
    unknown = wanted - {h.name for h in every}
    if unknown:
        raise ValueError(f"LEDGER_WORKER_HANDLERS names unknown consumers: {sorted(unknown)}")
    return [h for h in every if not wanted or h.name in wanted]


def handlers() -> list[Projection | IngressHandler]:
    return build_handlers(LedgerSettings())


def worker_spec(settings: LedgerSettings | None = None) -> WorkerSpec:
    settings = settings or LedgerSettings()
    return WorkerSpec(
        settings=settings,
        migrations_dir=MIGRATIONS_DIR,
        handlers=lambda: build_handlers(settings),
        relay=settings.worker_relay,
        gc_thresholds=settings.gc_thresholds,
    )


cli = typer.Typer(add_completion=False, help="The ledger's worker: outbox relay and consumers.")


@cli.callback(invoke_without_command=True)
def default(ctx: typer.Context) -> None:
    """Without a command, `run`."""
    if ctx.invoked_subcommand is None:
        run()


@cli.command()
def run() -> None:
    """Migrate, create missing topics, then relay and consume until SIGTERM."""
    spec = worker_spec()
    configure_logging(f"{spec.settings.service_name}-worker", spec.settings.log_level)
    if spec.settings.worker_metrics_port:
        from prometheus_client import start_http_server

        start_http_server(spec.settings.worker_metrics_port, addr="127.0.0.1")
    asyncio.run(run_worker(spec))


@cli.command()
def rebuild(name: str) -> None:
    """Rebuild a projection: ledger-periods / ledger-payments from the event store (at once), or
    account-links (emptied; the worker replays it from accounts.events.v1)."""
    settings = LedgerSettings()
    configure_logging(f"{settings.service_name}-worker", settings.log_level)
    names = list(REBUILDERS) if name == LedgerReadModels.name else [name] if name in REBUILDERS else []
    for one in names:
        stats = asyncio.run(_rebuild_from_store(settings, one))
        typer.echo(
            f"projection {one} rebuilt from the event store: {stats.events} events, {stats.streams} streams,"
            f" {stats.rows} rows in {stats.seconds:.2f}s ({stats.events_per_second:,.0f} events/s)"
        )
    if names:
        return
    if name == AccountLinksProjection.name:
        asyncio.run(rebuild_projection(worker_spec(settings), name))
        typer.echo(f"projection {name} reset; the worker replays it from accounts.events.v1")
        return
    raise typer.BadParameter(
        f"no projection named {name!r}; one of: {', '.join([*REBUILDERS, 'account-links'])}"
    )


async def _rebuild_from_store(settings: LedgerSettings, name: str) -> RebuildStats:
    await asyncio.to_thread(migrate_to_head, MIGRATIONS_DIR, settings.dsn)
    tune_gc(settings.gc_thresholds)
    pool = await open_pool(settings.dsn, max_size=1, name=f"{settings.service_name}-rebuild")
    try:
        return await rebuild_from_store(pool, name)
    finally:
        await pool.close()


@cli.command()
def verify() -> None:
    """Compare the read models (periods, payments) with the folds of the event store, read only; exit
    1 if they differ. The expected rows are held in memory: for tests and audits."""
    differences = asyncio.run(_verify(LedgerSettings()))
    for line in differences:
        typer.echo(line)
    if differences:
        typer.echo("the read models differ from the event store")
        raise typer.Exit(1)
    typer.echo("the read models equal the folds of the event store")


async def _verify(settings: LedgerSettings) -> list[str]:
    pool = await open_pool(settings.dsn, max_size=1, name=f"{settings.service_name}-verify")
    try:
        async with pool.connection() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # one snapshot of all
            return await verify_read_models(conn)
    finally:
        await pool.close()


@cli.command()
def parked(
    stale_days: int | None = typer.Option(None, help="flag items older than this (default: setting)"),
) -> None:
    """List the parked messages: waiting for their account to open, or for the payment they cancel."""
    settings = LedgerSettings()
    rows = asyncio.run(_parked(settings))
    limit = stale_days if stale_days is not None else settings.parked_stale_after_days
    now = datetime.now(UTC)
    typer.echo(f"{len(rows)} parked message(s); waiting longer than {limit} day(s) are marked STALE")
    for row_id, parked_at, account_no, waiting_for, event_type, payment_id, topic, partition, offset in rows:
        age = now - parked_at
        flag = "STALE" if age.days >= limit else ""
        typer.echo(
            f"{row_id:>8} {parked_at:%Y-%m-%d %H:%M} age={age.days}d {flag:5} account={account_no}"
            f" waiting_for={waiting_for} {event_type} payment_id={payment_id or '-'}"
            f" from {topic}[{partition}]@{offset}"
        )


async def _parked(settings: LedgerSettings) -> list[tuple[Any, ...]]:
    pool = await open_pool(settings.dsn, max_size=1, name=f"{settings.service_name}-parked")
    try:
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id, parked_at, account_no, waiting_for, event_type, payment_id, source_topic,"
                " source_partition, source_offset FROM ledger_parked ORDER BY id"
            )
            return list(await cur.fetchall())
    finally:
        await pool.close()


@cli.command()
def migrate() -> None:
    """Apply the service's migrations."""
    migrate_to_head(MIGRATIONS_DIR, LedgerSettings().dsn)


if __name__ == "__main__":
    cli()
