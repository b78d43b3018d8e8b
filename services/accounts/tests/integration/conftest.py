"""The accounts service on the real stack: its API in-process, its worker as tasks, a fresh database.

The Kafka topics are the shared ones and keep their history forever. So that a test run neither
replays (nor republishes) everything every earlier run and every other engineer put on them, the
harness's consumers start from the topics' current ends: their offsets are written into the fresh
database before the worker starts (the runner seeks to the stored offsets). Tests then produce their
own messages with fresh account numbers and ids.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import date
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition

from accounts.api import create_app
from accounts.settings import MIGRATIONS_DIR, AccountsSettings
from accounts.worker import handlers
from contracts import backoffice as bo
from contracts.events import ledger
from contracts.topics import dead_letter_topic
from service_runtime.kafka import ensure_topics
from service_runtime.migrations import migrate_to_head
from tests.support.harness import ServiceHarness
from tests.support.messages import backoffice_message, canonical_envelope
from tests.support.offsets import Offsets, end_offsets, seed_consumer_offsets
from tests.support.stack import eventually, produce
from tests.support.tokens import SigningKeys

LEDGER_VERSION_BASE = 1_000_000

WATCHED_TOPICS = (
    bo.ACCOUNTS,
    bo.REFERENCE,
    bo.REQUESTS,
    "accounts.events.v1",
    ledger.TOPIC,
    dead_letter_topic(bo.ACCOUNTS),
    dead_letter_topic(bo.REQUESTS),
    dead_letter_topic(bo.REFERENCE),
)


class AccountsStack:
    """The running service plus helpers to feed it and look inside."""

    def __init__(self, harness: ServiceHarness, settings: AccountsSettings, start: Offsets) -> None:
        self.harness = harness
        self.settings = settings
        self.start = start
        self.bootstrap = settings.kafka_bootstrap_servers
        self.api: httpx.AsyncClient = harness.client
        self._keys = SigningKeys()
        assert harness.app is not None
        harness.app.state.token_verifier = self._keys.verifier()
        self._ledger_versions: dict[str, int] = {}
        self.account_nos: list[str] = []
        self.office_codes: list[str] = []

    def seed_progress_at_start(self) -> None:
        seed_consumer_offsets(
            self.settings.dsn, f"{self.settings.service_name}-{self.harness.instance}", handlers(), self.start
        )

    # --- identities ------------------------------------------------------------------------------
    def auth(self, user_id: uuid.UUID) -> dict[str, str]:
        return self._keys.auth(user_id)

    def new_account_no(self) -> str:
        number = str(random.randint(10**11, 10**12 - 1))
        self.account_nos.append(number)
        return number

    def new_office_code(self) -> str:
        code = f"T{uuid.uuid4().hex[:10].upper()}"
        self.office_codes.append(code)
        return code

    # --- back-office messages --------------------------------------------------------------------
    @staticmethod
    def message(
        event_type: str, payload: dict[str, Any], event_id: uuid.UUID | None = None
    ) -> tuple[uuid.UUID, bytes]:
        event_id = event_id or uuid.uuid4()
        return event_id, backoffice_message(
            event_type, payload, event_id, occurred_at="2025-03-14T09:21:00+05:00"
        )

    async def send(self, topic: str, key: str, *values: bytes) -> None:
        await produce(self.bootstrap, topic, [(key.encode(), v) for v in values])

    @staticmethod
    def opening(account_no: str, office: str = "ROES-T", **changes: Any) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "account_no": account_no,
            "payer_name": "Сейтказиева Айгуль Маратовна",
            "address": "г. Алматы, мкр. Самал-2, д. 58, кв. 14",
            "residents": 2,
            "electric_stove": True,
            "living_alone": False,
            "tariff_option": "tiered",
            "district_office_code": office,
            "opened_on": "2024-01-15",
            "meter": {
                "serial": "CE-0001",
                "digits": 6,
                "installed_on": "2024-01-15",
                "initial_reading": "120.00",
            },
            "opening_balance": "350.25",
        }
        payload.update(changes)
        return payload

    async def open_account(self, account_no: str, office: str = "ROES-T", **changes: Any) -> uuid.UUID:
        event_id, value = self.message("AccountOpened", self.opening(account_no, office, **changes))
        await self.send(bo.ACCOUNTS, account_no, value)
        await self.wait_events(f"account:{account_no}", 2)
        return event_id

    # --- ledger's payments -----------------------------------------------------------------------
    async def _ledger_event(
        self, account_no: str, payload: ledger.PaymentReceived | ledger.PaymentReversed
    ) -> None:
        stream = ledger.ledger_stream(account_no, "electricity")
        # A real ledger (the stack's worker, or another suite's harness running at the same time) reacts
        # to our AccountOpened with its own events on this stream, from version 1; consumers keep the first
        # event of each version. Versions far above its own keep these stand-ins from being shadowed.
        version = self._ledger_versions.get(stream, LEDGER_VERSION_BASE) + 1
        self._ledger_versions[stream] = version
        envelope = canonical_envelope(stream, version, payload, "ledger")
        await produce(self.bootstrap, ledger.TOPIC, [(stream.encode(), envelope.to_json_bytes())])

    async def pay(self, account_no: str, payment_id: str, paid_on: date, amount: str) -> None:
        await self._ledger_event(
            account_no,
            ledger.PaymentReceived(
                account_no=account_no,
                service_code="electricity",
                payment_id=payment_id,
                paid_on=paid_on,
                period=paid_on.strftime("%Y-%m"),
                amount=amount,  # type: ignore[arg-type]
                bank="Halyk Bank",
            ),
        )

    async def reverse(self, account_no: str, payment_id: str, paid_on: date, amount: str) -> None:
        await self._ledger_event(
            account_no,
            ledger.PaymentReversed(
                account_no=account_no,
                service_code="electricity",
                payment_id=payment_id,
                period=paid_on.strftime("%Y-%m"),
                amount=amount,  # type: ignore[arg-type]
                reason="отозван банком",
            ),
        )

    async def wait_payments(self, account_no: str, count: int, reversed_count: int = 0) -> None:
        async def arrived() -> bool:
            rows = await self.fetch(
                "SELECT count(*) FILTER (WHERE paid_on IS NOT NULL), count(*) FILTER (WHERE reversed)"
                " FROM proof_payments WHERE account_no = %s",
                (account_no,),
            )
            return rows[0] == (count, reversed_count)

        await eventually(arrived)

    # --- linking ---------------------------------------------------------------------------------
    async def link(self, user: uuid.UUID, account_no: str, month: str, amount: str) -> httpx.Response:
        return await self.api.post(
            "/internal/v1/accounts",
            json={"account_no": account_no, "last_payment_month": month, "last_payment_amount": amount},
            headers=self.auth(user),
        )

    async def open_paid_and_linked(self, user: uuid.UUID, office: str = "ROES-T") -> str:
        account_no = self.new_account_no()
        await self.open_account(account_no, office)
        await self.pay(account_no, f"pay-{uuid.uuid4().hex[:12]}", date(2025, 4, 2), "4100.00")
        await self.wait_payments(account_no, 1)
        response = await self.link(user, account_no, "2025-04", "4100.00")
        assert response.status_code == 201, response.text
        return account_no

    # --- looking inside --------------------------------------------------------------------------
    async def fetch(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await self.harness.fetch(query, params)

    async def events(self, stream_id: str) -> list[tuple[uuid.UUID, str, dict[str, Any]]]:
        rows = await self.fetch(
            "SELECT event_id, event_type, payload FROM events WHERE stream_id = %s ORDER BY stream_version",
            (stream_id,),
        )
        return [(r[0], r[1], r[2]) for r in rows]

    async def wait_events(self, stream_id: str, count: int) -> None:
        async def appended() -> bool:
            return len(await self.events(stream_id)) >= count

        await eventually(appended)

    async def wait_handled(self, consumer: str, *event_ids: uuid.UUID) -> None:
        """Until the ingress consumer has handled these back-office messages (its inbox has them)."""

        async def handled() -> bool:
            rows = await self.fetch(
                "SELECT count(*) FROM consumer_inbox WHERE consumer = %s AND event_id = ANY(%s)",
                (f"accounts-{self.harness.instance}.{consumer}", list(event_ids)),
            )
            return int(rows[0][0]) == len(set(event_ids))

        await eventually(handled)

    async def read_topic_since_start(
        self, topic: str, done: Callable[[list[ConsumerRecord[bytes, bytes]]], bool], timeout_s: float = 30.0
    ) -> list[ConsumerRecord[bytes, bytes]]:
        """Records of `topic` since the fixture started, until `done(records)` (or the deadline)."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        records: list[ConsumerRecord[bytes, bytes]] = []
        try:
            tps = [TopicPartition(topic, p) for p in self.start[topic]]
            consumer.assign(tps)
            for tp in tps:
                consumer.seek(tp, self.start[topic][tp.partition])
            deadline = asyncio.get_running_loop().time() + timeout_s
            while not done(records) and asyncio.get_running_loop().time() < deadline:
                for batch in (await consumer.getmany(timeout_ms=300)).values():
                    records.extend(batch)
        finally:
            await consumer.stop()
        return records

    def is_ours(self, record: ConsumerRecord[bytes, bytes]) -> bool:
        """Dead-lettered by this harness's consumers (another accounts worker on the shared stack may
        consume the same back-office messages and dead-letter them too, for its own reasons)."""
        consumer = dict(record.headers).get("dlq.consumer", b"").decode()
        return consumer.startswith(f"{self.settings.service_name}-{self.harness.instance}.")

    async def dead_letters(self, topic: str, key: str, count: int) -> list[str]:
        """The reasons of our dead letters of `topic` keyed `key`, once `count` of them arrived."""

        def mine(records: list[ConsumerRecord[bytes, bytes]]) -> list[str]:
            return [
                dict(r.headers)["dlq.reason"].decode()
                for r in records
                if r.key == key.encode() and self.is_ours(r)
            ]

        records = await self.read_topic_since_start(
            dead_letter_topic(topic), lambda rs: len(mine(rs)) >= count
        )
        return mine(records)


@pytest.fixture(scope="module")
async def accounts(make_database: Callable[[], str], kafka_bootstrap: str) -> AsyncIterator[AccountsStack]:
    settings = AccountsSettings(database_url=make_database(), link_max_failures=5, link_failure_window_s=900)
    harness = ServiceHarness(
        settings,
        migrations_dir=MIGRATIONS_DIR,
        app_factory=lambda _: create_app(settings),
        handlers=lambda: handlers(settings, consumer_prefix=f"{settings.service_name}-{harness.instance}"),
    )
    await asyncio.to_thread(migrate_to_head, MIGRATIONS_DIR, settings.dsn)
    await ensure_topics(kafka_bootstrap)
    start = await end_offsets(kafka_bootstrap, WATCHED_TOPICS)
    seed_consumer_offsets(settings.dsn, f"{settings.service_name}-{harness.instance}", handlers(), start)
    async with harness:
        yield AccountsStack(harness, settings, start)
