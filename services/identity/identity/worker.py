"""The identity worker: its outbox relay and consumers. `python -m identity.worker --help`."""

from __future__ import annotations

from service_runtime.worker import WorkerSpec, worker_cli

from identity.settings import MIGRATIONS_DIR, IdentitySettings


def worker_spec() -> WorkerSpec:
    return WorkerSpec(settings=IdentitySettings(), migrations_dir=MIGRATIONS_DIR)


cli = worker_cli(worker_spec)

if __name__ == "__main__":
    cli()
