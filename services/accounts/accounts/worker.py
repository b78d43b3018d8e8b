"""The accounts worker: its outbox relay and consumers. `python -m accounts.worker --help`."""

from __future__ import annotations

from accounts.adapters.district_offices import DistrictOfficeIngress, DistrictOfficesProjection
from accounts.settings import MIGRATIONS_DIR, AccountsSettings
from service_runtime.consumers import IngressHandler, Projection
from service_runtime.eventstore import EventStore
from service_runtime.worker import WorkerSpec, worker_cli


def handlers() -> list[Projection | IngressHandler]:
    store = EventStore(producer="accounts")
    return [DistrictOfficeIngress(store), DistrictOfficesProjection()]


def worker_spec() -> WorkerSpec:
    return WorkerSpec(settings=AccountsSettings(), migrations_dir=MIGRATIONS_DIR, handlers=handlers)


cli = worker_cli(worker_spec)

if __name__ == "__main__":
    cli()
