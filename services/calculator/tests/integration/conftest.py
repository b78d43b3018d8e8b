"""Calculator on the real stack: its API in-process, its consumers and relay (ServiceHarness), and its
background parts (catalog seed, the faust rating agent, the billing-run loop) beside them."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import BaseModel

from calculator.adapters.ingress import PeriodClosedIngress
from calculator.api import create_app
from calculator.settings import MIGRATIONS_DIR, CalculatorSettings
from calculator.worker import Background, Components, handlers
from contracts.events import accounts as acc
from contracts.events.calculator import TOPIC as CALCULATOR_TOPIC
from service_runtime.consumers import IngressHandler, IngressMessage, Projection
from service_runtime.db import Connection
from tests.support.harness import ServiceHarness
from tests.support.messages import backoffice_message as backoffice_message
from tests.support.messages import canonical_envelope
from tests.support.stack import eventually, produce
from tests.support.tokens import SigningKeys as Keys

KID = "calculator-test-key"


def account_number() -> str:
    return str(random.randint(10**11, 10**12 - 1))


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(KID, ttl_s=600)


class Calc:
    def __init__(self, svc: ServiceHarness, background: Background, keys: Keys, bootstrap: str) -> None:
        self.svc = svc
        self.background = background
        self.keys = keys
        self.bootstrap = bootstrap
        self.user = uuid.uuid4()

    @property
    def client(self) -> Any:
        return self.svc.client

    def auth(self, user: uuid.UUID | None = None) -> dict[str, str]:
        return self.keys.auth(user or self.user)

    async def fetch(self, query: str, params: Any = ()) -> list[tuple[Any, ...]]:
        return await self.svc.fetch(query, params)

    async def open_account(
        self,
        account_no: str,
        *,
        opened_on: dt.date,
        residents: int = 2,
        tariff_option: str = "flat",
        electric_stove: bool = False,
        living_alone: bool = False,
        serial: str | None = None,
        digits: int = 6,
        initial_reading: str = "1000.00",
        link: bool = True,
    ) -> str:
        """Accounts' canonical events for a new account (and the test user's link); waits until projected."""
        serial = serial or f"M{account_no}"
        stream = acc.account_stream(account_no)
        events: list[tuple[str, int, BaseModel]] = [
            (
                stream,
                1,
                acc.AccountOpened(
                    account_no=account_no,
                    payer_name="Тестов Т.Т.",
                    address="Алматы, ул. Тестовая, 1",
                    residents=residents,
                    electric_stove=electric_stove,
                    living_alone=living_alone,
                    tariff_option=tariff_option,  # type: ignore[arg-type]
                    district_office_code="01",
                    opened_on=opened_on,
                ),
            ),
            (
                stream,
                2,
                acc.MeterInstalled(
                    account_no=account_no,
                    serial=serial,
                    digits=digits,
                    installed_on=opened_on,
                    initial_reading=Decimal(initial_reading),
                ),
            ),
        ]
        if link:
            events.append(
                (
                    acc.account_links_stream(account_no),
                    1,
                    acc.AccountLinked(account_no=account_no, user_id=self.user),
                )
            )
        await produce_canonical(self.bootstrap, acc.TOPIC, events)
        return serial

    async def wait_projected(
        self, account_nos: list[str], linked: list[str] | None = None, timeout_s: float = 60
    ) -> None:
        """Until the accounts (with their meters) and the test user's links are projected."""
        links = account_nos if linked is None else linked

        async def projected() -> bool:
            rows = await self.fetch("SELECT count(*) FROM meters WHERE account_no = ANY(%s)", (account_nos,))
            linked_rows = await self.fetch(
                "SELECT count(*) FROM account_links WHERE account_no = ANY(%s) AND user_id = %s",
                (links, self.user),
            )
            return int(rows[0][0]) >= len(account_nos) and int(linked_rows[0][0]) >= len(links)

        await eventually(projected, timeout_s=timeout_s)

    async def published(self, watcher: TopicWatcher, event_type: str, key: str, value: str) -> dict[str, Any]:
        """This instance's stored event (`payload->>key = value`), once it is on the topic, byte for byte.

        Matched by event id *and* payload: another calculator on the shared cluster (the running stack's)
        sees the same back-office messages and may publish an event with the same deterministic id."""
        rows: list[tuple[Any, ...]] = []

        async def stored() -> bool:
            nonlocal rows
            rows = await self.fetch(
                "SELECT event_id::text, payload::text FROM events WHERE event_type = %s AND payload->>%s = %s",
                (event_type, key, value),
            )
            return bool(rows)

        await eventually(stored)
        [(event_id, payload)] = rows
        mine = orjson.loads(payload)
        [found] = await watcher.wait_for(lambda e: e.get("event_id") == event_id and e.get("payload") == mine)
        return found

    async def wait_charge(self, charge_id: str, timeout_s: float = 60) -> None:
        async def charged() -> bool:
            return bool(await self.fetch("SELECT 1 FROM charges WHERE charge_id = %s", (charge_id,)))

        await eventually(charged, timeout_s=timeout_s)


async def produce_canonical(bootstrap: str, topic: str, events: list[tuple[str, int, BaseModel]]) -> None:
    messages = []
    for stream, version, payload in events:
        envelope = canonical_envelope(stream, version, payload, "accounts")
        messages.append((stream.encode(), envelope.to_json_bytes()))
    await produce(bootstrap, topic, messages)


class TopicWatcher:
    """Reads a topic from the offsets it had when created: what a test caused, not the topic's history."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.records: list[Any] = []
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> TopicWatcher:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        partitions = [TopicPartition(self.topic, p) for p in consumer.partitions_for_topic(self.topic) or ()]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [
                TopicPartition(self.topic, p) for p in consumer.partitions_for_topic(self.topic) or ()
            ]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        for tp, offset in ends.items():
            consumer.seek(tp, offset)
        self._consumer = consumer
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def poll(self) -> None:
        assert self._consumer is not None
        batch = await self._consumer.getmany(timeout_ms=300)
        for recs in batch.values():
            self.records.extend(recs)

    def envelopes(self, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        out = []
        for record in self.records:
            try:
                value = orjson.loads(record.value)
            except orjson.JSONDecodeError:
                continue
            if predicate(value):
                out.append(value)
        return out

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], count: int = 1, timeout_s: float = 60
    ) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            found = self.envelopes(predicate)
            if len(found) >= count:
                return found
            if loop.time() > deadline:
                raise AssertionError(f"only {len(found)} of {count} matching messages on {self.topic}")
            await self.poll()


async def commit_group_at_end(bootstrap: str, group_id: str, topic: str) -> None:
    """Give a new consumer group committed offsets at the topic's current end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.commit({tp: offset for tp, offset in ends.items()})
    finally:
        await consumer.stop()


# The PeriodClosed messages these tests produced (`test_calculator_billing.period_closed`). Other suites
# close periods on the same shared topic at any time (several 2025-06 closings a minute while they run);
# each would bill every account of every test instance and add estimates the tests do not expect.
OUR_PERIOD_CLOSINGS: set[uuid.UUID] = set()


class OwnPeriodClosings(PeriodClosedIngress):
    """PeriodClosedIngress for the tests' instances: only the closings the tests produced."""

    async def handle(self, conn: Connection, message: IngressMessage) -> None:
        if message.envelope.event_id in OUR_PERIOD_CLOSINGS:
            await super().handle(conn, message)


def own_closings_only(
    handlers: list[Projection | IngressHandler], settings: CalculatorSettings
) -> list[Projection | IngressHandler]:
    return [
        OwnPeriodClosings(settings.ingress_since) if isinstance(h, PeriodClosedIngress) else h
        for h in handlers
    ]


@pytest.fixture
def faust_data_dir() -> Iterator[Path]:
    """A directory of the test's own for faust's app directories, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="calculator-faust-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def calc(
    stack_env: dict[str, str], make_database: Any, kafka_bootstrap: str, keys: Keys, faust_data_dir: Path
) -> AsyncIterator[Calc]:
    # The shared topics keep every test's history: this instance handles only what happens from now on
    # (readings and period closings; its rating agent starts at the topic's end).
    settings = CalculatorSettings(
        database_url=make_database(),
        kafka_bootstrap_servers=kafka_bootstrap,
        ingress_since=dt.datetime.now(dt.UTC),
        faust_data_dir=faust_data_dir,
    )
    components = Components()
    harness = ServiceHarness(
        settings,
        migrations_dir=MIGRATIONS_DIR,
        app_factory=create_app,
        handlers=lambda: own_closings_only(handlers(components, settings), settings),  # type: ignore[arg-type]
        # Every consumer starts at its topics' current end (the accounts topic holds every earlier run's
        # and benchmark's accounts: replaying them took longer than a test waits).
        start_at_topic_end=True,
    )
    async with harness as svc:
        assert svc.app is not None
        svc.app.state.token_verifier.load_jwks(keys.jwks)
        app_id = f"calculator-rating-test-{svc.instance}"
        await commit_group_at_end(kafka_bootstrap, app_id, CALCULATOR_TOPIC)
        background = Background(settings, svc.pool, components, rating_app_id=app_id)
        await background.start()
        calc = Calc(svc, background, keys, kafka_bootstrap)
        try:
            yield calc
        finally:
            await calc.background.stop()  # the one running now (a test may have restarted it)
