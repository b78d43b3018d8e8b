"""The receipts service on the real stack: its API in-process, its worker (relay, projections, and, when a
test starts them, the PDF renderer and the e-bill sender) as tasks, a fresh database.

The input topics are the shared ones and keep their history forever. So that a run neither replays
everything earlier runs and other engineers put on them, the harness's consumers start at the topics'
current ends (their offsets are written into the fresh database before the worker starts). Tests then
publish their own input events (as the other services would) with fresh account numbers, and their
own stream ids for the shared tariff catalog.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from contracts.envelope import Envelope
from contracts.registry import registry
from receipts.adapters.ebill_sender import EBillSender
from receipts.adapters.pdf_renderer import PdfRenderer
from receipts.api import create_app
from receipts.settings import MIGRATIONS_DIR, ReceiptsSettings
from receipts.worker import handlers
from service_runtime.eventstore import EventStore
from tests.support.harness import ServiceHarness
from tests.support.messages import canonical_envelope
from tests.support.stack import eventually, produce
from tests.support.tokens import SigningKeys


class ReceiptsStack:
    """The running service plus helpers to feed it events and to look inside."""

    def __init__(self, harness: ServiceHarness, settings: ReceiptsSettings) -> None:
        self.harness = harness
        self.settings = settings
        self.bootstrap = settings.kafka_bootstrap_servers
        assert harness.app is not None
        self.api: httpx.AsyncClient = harness.client
        self._keys = SigningKeys()
        harness.app.state.token_verifier = self._keys.verifier()
        self._versions: dict[str, int] = {}
        self.senders: list[tuple[EBillSender, asyncio.Task[None]]] = []
        self.renderers: list[tuple[PdfRenderer, asyncio.Task[None]]] = []

    # --- identities and numbers --------------------------------------------------------------------
    def auth(self, user_id: uuid.UUID) -> dict[str, str]:
        return self._keys.auth(user_id)

    @staticmethod
    def new_account_no() -> str:
        return str(random.randint(10**11, 10**12 - 1))

    # --- publishing input events, as their owners would ---------------------------------------------
    def envelope(self, stream_id: str, payload: BaseModel, *, version: int | None = None) -> Envelope:
        if version is None:
            version = self._versions.get(stream_id, 0) + 1
        self._versions[stream_id] = max(self._versions.get(stream_id, 0), version)
        return canonical_envelope(stream_id, version, payload, registry.spec_of(payload).topic.split(".")[0])

    async def publish(self, stream_id: str, *payloads: BaseModel) -> list[Envelope]:
        envelopes = [self.envelope(stream_id, p) for p in payloads]
        await self.send(*envelopes)
        return envelopes

    async def send(self, *envelopes: Envelope) -> None:
        """Produce envelopes (again, for a redelivery) onto their topics, keyed by stream id."""
        for env in envelopes:
            topic = f"{env.producer}.events.v1"  # envelope() sets the producer to the owning service
            await produce(self.bootstrap, topic, [(env.stream_id.encode(), env.to_json_bytes())])

    # --- e-bill sender ---------------------------------------------------------------------------------
    def start_sender(self) -> EBillSender:
        sender = EBillSender(self.harness.pool, self.settings, EventStore(producer="receipts"))
        self.senders.append((sender, asyncio.create_task(sender.run())))
        return sender

    async def stop_senders(self) -> None:
        for sender, task in self.senders:
            sender.stop()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.senders = []

    # --- PDF renderer ------------------------------------------------------------------------------------
    def start_renderer(self, processes: int = 0, batch: int | None = None) -> PdfRenderer:
        renderer = PdfRenderer(self.harness.pool, self.settings, processes=processes, batch=batch)
        self.renderers.append((renderer, asyncio.create_task(renderer.run())))
        return renderer

    async def stop_renderers(self) -> None:
        for renderer, task in self.renderers:
            renderer.stop()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.renderers = []

    # --- looking inside --------------------------------------------------------------------------------
    async def fetch(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await self.harness.fetch(query, params)

    async def wait(self, query: str, params: Sequence[Any], expected: Any, timeout_s: float = 60.0) -> None:
        async def reached() -> bool:
            return await self.fetch(query, params) == expected

        await eventually(reached, timeout_s=timeout_s)

    async def applied(self, projection: str, stream_id: str, version: int) -> bool:
        rows = await self.fetch(
            "SELECT version FROM consumer_stream_versions WHERE consumer = %s AND stream_id = %s",
            (f"{self.settings.service_name}-{self.harness.instance}.{projection}", stream_id),
        )
        return bool(rows) and int(rows[0][0]) >= version

    async def wait_applied(self, projection: str, stream_id: str, version: int) -> None:
        await eventually(lambda: self.applied(projection, stream_id, version))


@pytest.fixture(scope="module")
async def receipts(make_database: Callable[[], str], kafka_bootstrap: str) -> AsyncIterator[ReceiptsStack]:
    settings = ReceiptsSettings(
        database_url=make_database(),
        ebill_poll_interval_s=0.5,
        ebill_backoff_base_s=0.5,
        render_poll_interval_s=0.5,
        render_backoff_base_s=0.2,
        render_max_attempts=2,
        pdf_engine="chromium",  # the default; test_an_overpaid_period... prints one with WeasyPrint
        pdf_render_timeout_s=120.0,  # a liveness bound on a loaded machine, not a timing
    )
    harness = ServiceHarness(
        settings,
        migrations_dir=MIGRATIONS_DIR,
        app_factory=lambda _: create_app(settings),
        handlers=lambda: handlers(settings),
        start_at_topic_end=True,
    )
    async with harness:
        stack = ReceiptsStack(harness, settings)
        try:
            yield stack
        finally:
            await stack.stop_senders()
            await stack.stop_renderers()
