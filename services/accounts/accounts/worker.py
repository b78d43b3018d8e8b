"""The accounts worker: its outbox relay and consumers. `python -m accounts.worker --help`.

Projections (rebuild any with `python -m accounts.worker rebuild <name>`): accounts, meter-history,
account-links, service-requests, district-offices, payment-proofs.
"""

from __future__ import annotations

from accounts.adapters.account_ingress import AccountIngress
from accounts.adapters.dead_letters import DeadLetterSender
from accounts.adapters.district_offices import DistrictOfficeIngress, DistrictOfficesProjection
from accounts.adapters.projections import (
    AccountsProjection,
    LinksProjection,
    MeterHistoryProjection,
    PaymentProofProjection,
    ServiceRequestsProjection,
)
from accounts.adapters.request_ingress import RequestProgressIngress
from accounts.settings import MIGRATIONS_DIR, AccountsSettings
from service_runtime.consumers import IngressHandler, Projection
from service_runtime.eventstore import EventStore
from service_runtime.worker import WorkerSpec, worker_cli


def handlers(
    settings: AccountsSettings | None = None, *, consumer_prefix: str | None = None
) -> list[Projection | IngressHandler]:
    """`consumer_prefix`: the `service` the ConsumerRunners get (default: the service name), so that the
    dead letters the account ingress sends itself carry the same consumer id as the runner's."""
    settings = settings or AccountsSettings()
    store = EventStore(producer="accounts")
    prefix = consumer_prefix or settings.service_name
    dead_letters = DeadLetterSender(
        settings.kafka_bootstrap_servers, consumer=f"{prefix}.{AccountIngress.name}"
    )
    return [
        AccountIngress(store, dead_letters),
        RequestProgressIngress(store),
        DistrictOfficeIngress(store),
        AccountsProjection(),
        MeterHistoryProjection(),
        LinksProjection(),
        ServiceRequestsProjection(),
        DistrictOfficesProjection(),
        PaymentProofProjection(),
    ]


def worker_spec() -> WorkerSpec:
    settings = AccountsSettings()
    return WorkerSpec(settings=settings, migrations_dir=MIGRATIONS_DIR, handlers=lambda: handlers(settings))


cli = worker_cli(worker_spec)

if __name__ == "__main__":
    cli()
