"""The receipts worker: outbox relay, projections (which issue the bills) and the e-bill sender.

    python -m receipts.worker [run]          # migrate, create topics; relay, consume and mail until SIGTERM
    python -m receipts.worker rebuild NAME   # empty a projection and its progress; `run` replays it
    python -m receipts.worker migrate

Projections: accounts, account-links, ledger, calculator (see adapters/projections.py). A rebuild never
touches the bills already issued, their PDFs or the e-bill deliveries: bills are receipts' own state.
The e-bill sender (adapters/ebill_sender.py) runs beside them as the worker's background loop.
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from typing import Any

from psycopg_pool import AsyncConnectionPool

from receipts.adapters.ebill_sender import EBillSender
from receipts.adapters.projections import (
    AccountsProjection,
    CalculatorProjection,
    LedgerProjection,
    LinksProjection,
)
from receipts.settings import MIGRATIONS_DIR, ReceiptsSettings
from service_runtime.consumers import IngressHandler, Projection
from service_runtime.db import Connection
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
    return [EBillSender(pool, settings, EventStore(producer=PRODUCER)).run()]


def worker_spec(settings: ReceiptsSettings | None = None) -> WorkerSpec:
    settings = settings or ReceiptsSettings()
    return WorkerSpec(
        settings=settings,
        migrations_dir=MIGRATIONS_DIR,
        handlers=lambda: handlers(settings),
        background=lambda pool: background(settings, pool),
    )


cli = worker_cli(worker_spec)

if __name__ == "__main__":
    cli()
