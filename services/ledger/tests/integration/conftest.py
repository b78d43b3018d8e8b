"""The ledger on the real stack: its API in-process and its worker (ServiceHarness), with helpers that
produce back-office messages (JSON envelopes keyed by account) and upstream canonical events.

One harness per test module: every harness replays the shared input topics from their beginning, so
fewer harnesses keep the suite fast. Tests use fresh random account numbers and ids.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import jwt
import orjson
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
from pydantic import BaseModel

from contracts import backoffice as bo
from contracts.envelope import Envelope
from contracts.events import accounts as acc
from contracts.events import calculator as calc
from ledger.adapters.runner import LedgerConsumerRunner
from ledger.api import create_app
from ledger.settings import MIGRATIONS_DIR, LedgerSettings
from ledger.worker import build_handlers
from service_runtime.kafka import ensure_topics
from service_runtime.migrations import migrate_to_head
from tests.support import harness as harness_module
from tests.support.harness import ServiceHarness
from tests.support.stack import eventually, produce

KID = "ledger-test-key"


def account_number() -> str:
    return str(random.randint(10**11, 10**12 - 1))


def uid() -> str:
    return uuid.uuid4().hex[:12]


class Keys:
    def __init__(self) -> None:
        self.private = Ed25519PrivateKey.generate()

    @property
    def jwks(self) -> dict[str, Any]:
        jwk = orjson.loads(OKPAlgorithm.to_jwk(self.private.public_key()))
        return {"keys": [{**jwk, "kid": KID, "alg": "EdDSA", "use": "sig"}]}

    def token(self, user_id: uuid.UUID) -> str:
        now = int(time.time())
        claims = {
            "iss": "lk-identity",
            "aud": "lk-portal",
            "sub": str(user_id),
            "sid": "s1",
            "iat": now,
            "exp": now + 600,
        }
        return jwt.encode(claims, self.private, algorithm="EdDSA", headers={"kid": KID})


class Ledger:
    """The harness plus the producers and readers a ledger test needs."""

    def __init__(self, svc: ServiceHarness, keys: Keys, bootstrap: str) -> None:
        self.svc = svc
        self.keys = keys
        self.bootstrap = bootstrap
        self._versions: dict[str, int] = {}
        self.accounts: set[str] = set()  # opened by this module's tests

    # --- HTTP -------------------------------------------------------------------------------
    def auth(self, user: uuid.UUID) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys.token(user)}"}

    async def get(self, path: str, user: uuid.UUID, **params: str) -> httpx.Response:
        return await self.svc.client.get(path, params=params, headers=self.auth(user))

    async def fetch(self, query: str, params: Any = ()) -> list[tuple[Any, ...]]:
        return await self.svc.fetch(query, params)

    async def wait_for(self, check: Callable[[], Any], timeout_s: float = 90.0) -> None:
        await eventually(check, timeout_s=timeout_s)

    # --- back-office messages ---------------------------------------------------------------
    @staticmethod
    def backoffice_message(event_type: str, payload: dict[str, Any], event_id: str | None = None) -> bytes:
        return orjson.dumps(
            {
                "event_id": event_id or str(uuid.uuid4()),
                "event_type": event_type,
                "schema_version": 1,
                "occurred_at": datetime.now(UTC).isoformat(),
                "producer": "backoffice",
                "payload": payload,
            }
        )

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
            envelope = Envelope(
                event_type=type(payload).__name__,
                schema_version=1,
                stream_id=stream_id,
                stream_version=version,
                producer=producer,
                payload=payload.model_dump(mode="json"),
            )
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
        await self.canonical(acc.TOPIC, acc.account_stream(account_no), "accounts", opened)

    async def link(self, account_no: str, user: uuid.UUID) -> None:
        await self.canonical(
            acc.TOPIC,
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
        await self.canonical(calc.TOPIC, f"meter-readings:{account_no}", "calculator", charge)

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
    return Keys()


async def start_at_the_end(harness: ServiceHarness, settings: LedgerSettings) -> None:
    """Make the harness's consumers start at the current end of their (shared) topics.

    A fresh harness would otherwise replay every message other tests and earlier runs left on the
    shared topics, which grows without bound and mixes in other databases' ledger streams (each
    harness republishes what it replays onto ledger.events.v1). Tests use fresh accounts, so the
    history is not needed: its offsets are committed beforehand, as the runner would have.
    """
    await asyncio.to_thread(migrate_to_head, MIGRATIONS_DIR, settings.dsn)
    await ensure_topics(settings.kafka_bootstrap_servers)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    rows = []
    try:
        await consumer._client.force_metadata_update()  # metadata of every topic, not only subscribed ones
        for handler in build_handlers(settings):
            consumer_id = f"{settings.service_name}-{harness.instance}.{handler.name}"
            for topic in handler.topics:
                partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
                assert partitions, f"no partitions known for {topic}"
                for tp, offset in (await consumer.end_offsets(partitions)).items():
                    rows.append((consumer_id, tp.topic, tp.partition, offset))
    finally:
        await consumer.stop()
    async with await psycopg.AsyncConnection.connect(settings.dsn, autocommit=True) as conn:
        await conn.cursor().executemany(
            "INSERT INTO consumer_offsets (consumer, topic, partition, next_offset) VALUES (%s, %s, %s, %s)",
            rows,
        )


@pytest.fixture(scope="module")
async def ledger(
    stack_env: dict[str, str], make_database: Callable[[], str], kafka_bootstrap: str, keys: Keys
) -> AsyncIterator[Ledger]:
    # Batches of 200: several in flight in every scenario (a worker is killed mid-batch in one of them).
    settings = LedgerSettings(
        database_url=make_database(), kafka_bootstrap_servers=kafka_bootstrap, consumer_batch_size=200
    )
    harness = ServiceHarness(
        settings,
        migrations_dir=MIGRATIONS_DIR,
        app_factory=create_app,  # type: ignore[arg-type]
        handlers=lambda: build_handlers(settings),
    )
    await start_at_the_end(harness, settings)
    # As `python -m ledger.worker run` does: the ledger's runner hands the ingress whole batches.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(harness_module, "ConsumerRunner", LedgerConsumerRunner)
        async with harness as svc:
            assert svc.app is not None
            svc.app.state.token_verifier.load_jwks(keys.jwks)
            yield Ledger(svc, keys, kafka_bootstrap)


__all__ = ["PAYMENTS", "Ledger", "account_number", "uid"]
PAYMENTS, BILLING = bo.PAYMENTS, bo.BILLING
