"""The receipts worker: its outbox relay and consumers. `python -m receipts.worker --help`."""

from __future__ import annotations

from service_runtime.worker import WorkerSpec, worker_cli

from receipts.settings import MIGRATIONS_DIR, ReceiptsSettings


def worker_spec() -> WorkerSpec:
    return WorkerSpec(settings=ReceiptsSettings(), migrations_dir=MIGRATIONS_DIR)


cli = worker_cli(worker_spec)

if __name__ == "__main__":
    cli()
