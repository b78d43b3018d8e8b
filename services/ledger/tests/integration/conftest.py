"""The ledger on the real stack: its API in-process and its worker (ServiceHarness), with helpers that
produce back-office messages (JSON envelopes keyed by account) and upstream canonical events.

One harness per test module, starting at the current end of its topics. Tests use fresh random
account numbers and ids. The back-office topics and ledger.events.v1 are the shared ones; the upstream
canonical events (accounts' and the calculator's) go on topics private to the module: a calculator
running on the shared stack bills every account it sees opened on accounts.events.v1 (estimates for
each closed period), which would add charges the tests did not make.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pydantic import BaseModel

from contracts import backoffice as bo
from contracts.events import accounts as acc
from contracts.events import calculator as calc
from contracts.events import ledger as ledger_events
from contracts.registry import EventRegistry
from ledger.adapters.dead_letters import DeadLetterSender
from ledger.adapters.ingress import BackofficeIngress, UpstreamIngress
from ledger.adapters.projections import AccountLinksProjection
from ledger.adapters.streams import AggregateCache, StoreConfig
from ledger.api import create_app
from ledger.settings import MIGRATIONS_DIR, LedgerSettings
from service_runtime.consumers import ConsumerRunner, IngressHandler, Projection
from tests.support.harness import ServiceHarness
from tests.support.messages import backoffice_message, canonical_envelope
from tests.support.stack import eventually, produce
from tests.support.tokens import SigningKeys as Keys

KID = "ledger-test-key"


def account_number() -> str:
    return str(random.randint(10**11, 10**12 - 1))


def uid() -> str:
    return uuid.uuid4().hex[:12]


class Upstream:
    """The module's private topics for accounts' and the calculator's canonical events, and a registry
    with their payload models registered there (the other topics as in the contracts)."""

    def __init__(self) -> None:
        run = uuid.uuid4().hex[:8]
        # `.events.` in the name: the ledger takes messages parked from such topics for canonical ones.
        self.accounts = f"ledger-test-{run}.accounts.events.v1"
        self.calculator = f"ledger-test-{run}.calculator.events.v1"
        self.registry = EventRegistry()
        backoffice = [(bo.PAYMENTS, "PaymentReported"), (bo.PAYMENTS, "PaymentCancelled"),
                      (bo.BILLING, "CorrectionIssued"), (bo.BILLING, "PeriodClosed")]  # fmt: skip
        for topic, name in backoffice:
            spec = bo.registry.spec(topic, name)
            self.registry.register(name, version=spec.version, topic=topic)(spec.model)
        for name in ("OpeningBalanceSet", "AccrualPosted", "CorrectionPosted", "PaymentReceived",
                     "PaymentReversed"):  # fmt: skip
            self.registry.register(name, version=1, topic=ledger_events.TOPIC)(getattr(ledger_events, name))
        for name in ("AccountOpened", "AccountLinked", "AccountUnlinked"):
            self.registry.register(name, version=1, topic=self.accounts)(getattr(acc, name))
        for name in ("ChargeCalculated", "EstimateReversed", "ReadingSubmitted", "PeriodBilled"):
            self.registry.register(name, version=1, topic=self.calculator)(getattr(calc, name))

    def topics(self) -> list[str]:
        return [self.accounts, self.calculator, f"{self.accounts}.dlq", f"{self.calculator}.dlq"]

    def handlers(self, settings: LedgerSettings) -> list[Projection | IngressHandler]:
        """The worker's consumers (ledger.worker.build_handlers: the read models are written inline by
        the inputs), the upstream ones on the private topics."""
        config = StoreConfig(topic=settings.events_topic, event_registry=self.registry)
        cache = AggregateCache(settings.aggregate_cache_events)
        dead_letters = DeadLetterSender(settings.kafka_bootstrap_servers, "ledger-test.parked")
        return [
            BackofficeIngress(config, dead_letters, cache=cache),
            UpstreamIngress(config, dead_letters, cache=cache, topics=(self.accounts, self.calculator)),
            AccountLinksProjection(topics=(self.accounts,)),
        ]

    def runner_class(self) -> type[ConsumerRunner]:
        """The runtime's runner with this registry (the harness's `runner_class` option)."""
        registry = self.registry

        class Runner(ConsumerRunner):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, event_registry=registry, **kwargs)

        return Runner


class Ledger:
    """The harness plus the producers and readers a ledger test needs."""

    def __init__(self, svc: ServiceHarness, keys: Keys, bootstrap: str, upstream: Upstream) -> None:
        self.svc = svc
        self.keys = keys
        self.bootstrap = bootstrap
        self.upstream = upstream
        self._versions: dict[str, int] = {}
        self.accounts: set[str] = set()  # opened by this module's tests

    # --- HTTP -------------------------------------------------------------------------------
    def auth(self, user: uuid.UUID) -> dict[str, str]:
        return self.keys.auth(user)

    async def get(self, path: str, user: uuid.UUID, **params: str) -> httpx.Response:
        return await self.svc.client.get(path, params=params, headers=self.auth(user))

    async def fetch(self, query: str, params: Any = ()) -> list[tuple[Any, ...]]:
        return await self.svc.fetch(query, params)

    async def wait_for(self, check: Callable[[], Any], timeout_s: float = 90.0) -> None:
        await eventually(check, timeout_s=timeout_s)

    # --- back-office messages ---------------------------------------------------------------
    backoffice_message = staticmethod(backoffice_message)

    async def backoffice(self, topic: str, messages: list[tuple[str, bytes]]) -> None:
        """Produce (account_no, message) pairs on a back-office topic, keyed by account number, in order.

        Many messages go out in batches (acknowledged at the end), so that they wait as a backlog."""
        if len(messages) < 50:
            await produce(self.bootstrap, topic, [(k.encode(), v) for k, v in messages])
            return
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            acks = [await producer.send(topic, value=v, key=k.encode()) for k, v in messages]
            await asyncio.gather(*acks)
        finally:
            await producer.stop()

    @staticmethod
    def payment(
        account_no: str,
        payment_id: str,
        amount: str,
        paid_on: date,
        bank: str = "Halyk Bank",
        event_id: str | None = None,
        **extra: Any,
    ) -> tuple[str, bytes]:
        payload = {
            "payment_id": payment_id,
            "account_no": account_no,
            "amount": amount,
            "paid_on": paid_on.isoformat(),
            "bank": bank,
            **extra,
        }
        return account_no, Ledger.backoffice_message("PaymentReported", payload, event_id)

    @staticmethod
    def cancellation(account_no: str, payment_id: str, reason: str = "Отозван банком") -> tuple[str, bytes]:
        payload = {"payment_id": payment_id, "account_no": account_no, "reason": reason}
        return account_no, Ledger.backoffice_message("PaymentCancelled", payload)

    @staticmethod
    def correction(
        account_no: str, correction_id: str, period: str, amount: str, service_code: str = "electricity"
    ) -> tuple[str, bytes]:
        payload = {
            "correction_id": correction_id,
            "account_no": account_no,
            "service_code": service_code,
            "period": period,
            "amount": amount,
            "reason": "Перерасчёт",
        }
        return account_no, Ledger.backoffice_message("CorrectionIssued", payload)

    # --- upstream canonical events ----------------------------------------------------------
    async def canonical(self, topic: str, stream_id: str, producer: str, *payloads: BaseModel) -> None:
        messages = []
        for payload in payloads:
            version = self._versions.get(stream_id, 0) + 1
            self._versions[stream_id] = version
            envelope = canonical_envelope(stream_id, version, payload, producer)
            messages.append((stream_id.encode(), envelope.to_json_bytes()))
        await produce(self.bootstrap, topic, messages)

    async def open_account(self, account_no: str, opened_on: date, opening_balance: str = "0.00") -> None:
        self.accounts.add(account_no)
        opened = acc.AccountOpened(
            account_no=account_no,
            payer_name="Иванов Иван Иванович",
            address="г. Алматы, ул. Абая, 1",
            residents=2,
            electric_stove=False,
            living_alone=False,
            tariff_option="flat",
            district_office_code="ROES-1",
            opened_on=opened_on,
            opening_balance=Decimal(opening_balance),
        )
        await self.canonical(self.upstream.accounts, acc.account_stream(account_no), "accounts", opened)

    async def link(self, account_no: str, user: uuid.UUID) -> None:
        await self.canonical(
            self.upstream.accounts,
            acc.account_links_stream(account_no),
            "accounts",
            acc.AccountLinked(account_no=account_no, user_id=user),
        )

    async def charge(
        self,
        account_no: str,
        charge_id: str,
        period: str,
        total: str,
        *,
        rate: str = "31.85",
        kwh: str = "100.00",
    ) -> None:
        first = date.fromisoformat(f"{period}-01")
        line = calc.ChargeLine(
            from_date=first,
            to_date=first.replace(day=28),
            tier="flat",
            limit_kwh=None,
            kwh=Decimal(kwh),
            rate=Decimal(rate),
            amount=Decimal(total),
        )
        charge = calc.ChargeCalculated(
            charge_id=charge_id,
            account_no=account_no,
            period=period,
            previous=None,
            current=None,
            days=27,
            consumption_kwh=Decimal(kwh),
            tariff_option_applied="flat",
            lines=[line],
            net_total=Decimal(total),
            vat=Decimal("0.00"),
            total=Decimal(total),
        )
        await self.canonical(self.upstream.calculator, f"meter-readings:{account_no}", "calculator", charge)

    async def dead_letters(
        self, topic: str, predicate: Callable[[Any], bool], expect: int, timeout_s: float = 60.0
    ) -> list[Any]:
        """The records of `<topic>.dlq` (a shared topic) that match, once `expect` of them are there."""
        consumer = AIOKafkaConsumer(
            f"{topic}.dlq",
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        found: list[Any] = []
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout_s
            while len(found) < expect and loop.time() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                found += [r for records in batch.values() for r in records if predicate(r)]
        finally:
            await consumer.stop()
        return found


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(KID, ttl_s=600)


@pytest.fixture(scope="module")
async def ledger(
    stack_env: dict[str, str], make_database: Callable[[], str], kafka_bootstrap: str, keys: Keys
) -> AsyncIterator[Ledger]:
    # Batches of 200: several in flight in every scenario (a worker is killed mid-batch in one of them).
    settings = LedgerSettings(
        database_url=make_database(), kafka_bootstrap_servers=kafka_bootstrap, consumer_batch_size=200
    )
    upstream = Upstream()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, 3, 1) for t in upstream.topics()])
        harness = ServiceHarness(
            settings,
            migrations_dir=MIGRATIONS_DIR,
            app_factory=create_app,  # type: ignore[arg-type]
            handlers=lambda: upstream.handlers(settings),
            runner_class=upstream.runner_class(),
            # The consumers start at the current end of their (shared) topics (tests use fresh accounts:
            # the history is not needed, and other databases' ledger streams stay out).
            start_at_topic_end=True,
        )
        async with harness as svc:
            assert svc.app is not None
            svc.app.state.token_verifier.load_jwks(keys.jwks)
            yield Ledger(svc, keys, kafka_bootstrap, upstream)
    finally:
        await admin.delete_topics(upstream.topics())
        await admin.close()


__all__ = ["PAYMENTS", "Ledger", "account_number", "uid"]
PAYMENTS, BILLING = bo.PAYMENTS, bo.BILLING
