"""The identity worker: the outbox relay (events → `identity.events.v1`) and the mail sender.

    python -m identity.worker [run]          # migrate, create topics, relay events and send mail until SIGTERM
    python -m identity.worker rebuild-users  # recreate the `users` read model from the user:* streams
    python -m identity.worker rebuild users  # the same, in the runtime's CLI form
    python -m identity.worker migrate

Identity consumes no topic: `handlers()` is empty. Its read model (`users`) is written in the same
transaction as the events (for the unique e-mail index), so it is rebuilt from the event store, not Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import typer
from prometheus_client import start_http_server

from identity.adapters.mail_sender import MailSender
from identity.adapters.postgres import rebuild_users
from identity.settings import MIGRATIONS_DIR, IdentitySettings
from service_runtime.consumers import IngressHandler, Projection
from service_runtime.db import open_pool
from service_runtime.logs import configure_logging
from service_runtime.migrations import migrate_to_head
from service_runtime.worker import WorkerSpec, run_worker

log = logging.getLogger(__name__)


def handlers() -> list[Projection | IngressHandler]:
    return []


def worker_spec(settings: IdentitySettings | None = None) -> WorkerSpec:
    return WorkerSpec(
        settings=settings or IdentitySettings(), migrations_dir=MIGRATIONS_DIR, handlers=handlers
    )


async def run_identity_worker(settings: IdentitySettings) -> None:
    """The runtime's worker (relay; it handles SIGTERM) and, beside it, the mail sender."""
    await asyncio.to_thread(migrate_to_head, MIGRATIONS_DIR, settings.dsn)
    pool = await open_pool(settings.dsn, max_size=2, name="identity-mail")
    sender = MailSender(pool, settings)
    mail_task = asyncio.create_task(sender.run(), name="mail-sender")
    try:
        await run_worker(worker_spec(settings))
    finally:
        sender.stop()
        mail_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await mail_task
        await pool.close()


async def _rebuild_users(settings: IdentitySettings) -> int:
    pool = await open_pool(settings.dsn, max_size=1, name="identity-rebuild")
    try:
        async with pool.connection() as conn:
            return await rebuild_users(conn)
    finally:
        await pool.close()


cli = typer.Typer(add_completion=False, help="The identity worker: outbox relay and mail sender.")


@cli.callback(invoke_without_command=True)
def default(ctx: typer.Context) -> None:
    """Without a command, `run`."""
    if ctx.invoked_subcommand is None:
        run()


@cli.command()
def run() -> None:
    """Migrate, create missing topics, then relay events and deliver mail until SIGTERM."""
    settings = IdentitySettings()
    configure_logging(f"{settings.service_name}-worker", settings.log_level)
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, addr="127.0.0.1")
    asyncio.run(run_identity_worker(settings))


@cli.command()
def rebuild(name: str) -> None:
    """Rebuild a read model by name, as every worker's CLI does. Identity has one: `users`."""
    if name != "users":
        raise typer.BadParameter(f"no projection named {name!r} (identity has: users)")
    rebuild_users_command()


@cli.command("rebuild-users")
def rebuild_users_command() -> None:
    """Empty the `users` read model and replay it from the user:* streams of the event store."""
    settings = IdentitySettings()
    configure_logging(f"{settings.service_name}-worker", settings.log_level)
    applied = asyncio.run(_rebuild_users(settings))
    typer.echo(f"users rebuilt from {applied} events")


@cli.command()
def migrate() -> None:
    """Apply the service's migrations."""
    migrate_to_head(MIGRATIONS_DIR, IdentitySettings().dsn)


if __name__ == "__main__":
    cli()
