"""The receipts worker: outbox relay, projections (which issue the bills) and the e-bill sender.

    python -m receipts.worker [run]          # migrate, create topics; relay, consume, render, mail until SIGTERM
    python -m receipts.worker rebuild NAME   # empty a projection and its progress; `run` replays it
    python -m receipts.worker migrate
    python -m receipts.worker render-backlog [--since YYYY-MM]   # queue bills without a current PDF

Projections: accounts, account-links, ledger, calculator (see adapters/projections.py). A rebuild never
touches the bills already issued, their PDFs or the e-bill deliveries: bills are receipts' own state.
Beside them run two background loops: the renderer (adapters/pdf_renderer.py), which renders every issued
bill's PDF once, in `RECEIPTS_RENDER_PROCESSES` processes, and the e-bill sender (adapters/ebill_sender.py).
After a `TEMPLATE_VERSION` bump, `render-backlog` queues the bills to render again (else they are rendered
when first downloaded).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from typing import Annotated, Any

import typer
from psycopg_pool import AsyncConnectionPool

from receipts.adapters.ebill_sender import EBillSender
from receipts.adapters.pdf_renderer import PdfRenderer
from receipts.adapters.pdfs import queue_missing_renders
from receipts.adapters.projections import (
    AccountsProjection,
    CalculatorProjection,
    LedgerProjection,
    LinksProjection,
)
from receipts.settings import MIGRATIONS_DIR, ReceiptsSettings
from service_runtime.consumers import IngressHandler, Projection
from service_runtime.db import Connection, open_pool
from service_runtime.eventstore import EventStore
from service_runtime.worker import WorkerSpec, worker_cli

PRODUCER = "receipts"


def handlers(settings: ReceiptsSettings | None = None) -> list[Projection | IngressHandler]:
    store = EventStore(producer=PRODUCER)
    return [
        AccountsProjection(store),
        LinksProjection(),
        LedgerProjection(store),
        CalculatorProjection(store),
    ]


def background(
    settings: ReceiptsSettings, pool: AsyncConnectionPool[Connection]
) -> Sequence[Coroutine[Any, Any, None]]:
    return [
        PdfRenderer(pool, settings).run(),  # also sets the process's PDF engine (the sender's renders)
        EBillSender(pool, settings, EventStore(producer=PRODUCER)).run(),
    ]


def worker_spec(settings: ReceiptsSettings | None = None) -> WorkerSpec:
    settings = settings or ReceiptsSettings()
    return WorkerSpec(
        settings=settings,
        migrations_dir=MIGRATIONS_DIR,
        handlers=lambda: handlers(settings),
        background=lambda pool: background(settings, pool),
        niceness=settings.worker_niceness,
    )


cli = worker_cli(worker_spec)


@cli.command("render-backlog")
def render_backlog(
    since: Annotated[str | None, typer.Option(help="only bills of this period (YYYY-MM) and later")] = None,
) -> None:
    """Queue for rendering every bill without a PDF of the current template version (a running worker
    renders them; downloads meanwhile render on demand)."""

    async def queue() -> int:
        settings = ReceiptsSettings()
        pool = await open_pool(settings.dsn, max_size=1, name="receipts-render-backlog")
        try:
            async with pool.connection() as conn:
                return await queue_missing_renders(conn, since)
        finally:
            await pool.close()

    typer.echo(f"{asyncio.run(queue())} bills queued for rendering")


if __name__ == "__main__":
    cli()
