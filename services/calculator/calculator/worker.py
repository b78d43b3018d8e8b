"""The calculator worker: its outbox relay and consumers. `python -m calculator.worker --help`."""

from __future__ import annotations

from calculator.settings import MIGRATIONS_DIR, CalculatorSettings
from service_runtime.worker import WorkerSpec, worker_cli


def worker_spec() -> WorkerSpec:
    return WorkerSpec(settings=CalculatorSettings(), migrations_dir=MIGRATIONS_DIR)


cli = worker_cli(worker_spec)

if __name__ == "__main__":
    cli()
