"""The ledger worker: its outbox relay and consumers. `python -m ledger.worker --help`."""

from __future__ import annotations

from ledger.settings import MIGRATIONS_DIR, LedgerSettings
from service_runtime.worker import WorkerSpec, worker_cli


def worker_spec() -> WorkerSpec:
    return WorkerSpec(settings=LedgerSettings(), migrations_dir=MIGRATIONS_DIR)


cli = worker_cli(worker_spec)

if __name__ == "__main__":
    cli()
