"""The rating stream as a faust-streaming agent: ReadingSubmitted on `calculator.events.v1` → ChargeCalculated.

The agent is a stateless step: it keeps no faust table (`store="memory://"`), produces nothing to Kafka,
and appends the charge to calculator's event store, so the outbox relay stays the only publisher. It is
at-least-once (`processing_guarantee="at_least_once"`, offsets committed after the handler returned);
a redelivered reading finds its charge (`chg-{reading_id}`) and does nothing.

Internal topics: with no tables and `topic_disable_leader=True` faust needs none, and
`topic_allow_declare=False` keeps it from creating any (the broker has `auto.create.topics.enable=false`).
Faust *can* create its own (its leader topic `<app id>-__assignor-__leader` was created through its
CreateTopics request against our Kafka 4.0.2 broker); we just don't need it: we never use `on_leader`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faust
from prometheus_client import Counter
from psycopg_pool import AsyncConnectionPool

from calculator.adapters.loops import until_done
from calculator.application.charges import RatingService
from contracts.envelope import Envelope
from contracts.events.calculator import TOPIC
from service_runtime.db import Connection

log = logging.getLogger(__name__)

RATED = Counter(
    "calculator_rating_stream_total", "ReadingSubmitted events seen by the rating stream", ["outcome"]
)


class RatingStream:
    """The step itself, independent of the stream library that feeds it."""

    def __init__(self, pool: AsyncConnectionPool[Connection], rating: RatingService) -> None:
        self._pool = pool
        self._rating = rating

    async def handle(self, raw: bytes | None) -> str:
        if raw is None or b"ReadingSubmitted" not in raw:
            return "skipped"  # (the billing run's own events pass by in thousands: not even parsed)
        try:
            envelope = Envelope.from_json_bytes(raw)
        except ValueError:
            RATED.labels("malformed").inc()
            return "malformed"
        if envelope.event_type != "ReadingSubmitted":
            return "skipped"
        reading_id = str(envelope.payload.get("reading_id", ""))
        delay = 0.2
        for attempt in range(1, 1000):
            try:
                async with self._pool.connection() as conn:
                    outcome = await self._rating.rate_reading(conn, reading_id, str(envelope.event_id))
                if outcome == "not_ready" and attempt < 50:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                RATED.labels(outcome).inc()
                return outcome
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # PostgreSQL away: keep the message, retry (at-least-once)
                log.warning(
                    "rating failed; retrying: %r", exc, extra={"reading_id": reading_id, "error": repr(exc)}
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        return "failed"


def rating_app(
    app_id: str, bootstrap_servers: str, step: RatingStream, *, datadir: Path, **settings: Any
) -> faust.App:
    """The faust app; `datadir` is where faust keeps its (here empty) app directory: a directory of
    our choosing (`CALCULATOR_FAUST_DATA_DIR`), not `<app id>-data` in the current directory. It is
    created here with its parents (faust creates only the last level)."""
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        app_id,
        broker=f"kafka://{bootstrap_servers}",
        datadir=str(datadir),
        store="memory://",
        web_enabled=False,
        processing_guarantee="at_least_once",
        topic_disable_leader=True,
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        # Offsets are committed every 1000 handled messages or every second, whichever comes first: the
        # topic carries thousands of events the step skips (the billing run's), and each commit costs
        # faust ~2 ms of bookkeeping (every 100: ~17 % of the agent's CPU per message, measured with
        # a consumer of its own on this topic). Still at-least-once: a restart redelivers at most a
        # second's worth, which the step skips or finds rated (`duplicate`).
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        **settings,
    )
    topic = app.topic(TOPIC, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    async def rate_readings(stream: Any) -> None:
        async for value in stream:
            await step.handle(value)

    app.agent(topic, name=f"{app_id}.rate-readings")(rate_readings)
    return app


class RatingAgent:
    """Runs the faust app inside our own event loop (no faust Worker, no signal handlers of its own).

    `start()` retries with backoff while Kafka is away (each try with a fresh app: a faust app whose
    start failed is not started again), like the relay and the consumers, instead of failing the worker.
    """

    def __init__(self, make_app: Callable[[], faust.App]) -> None:
        self._make_app = make_app
        self.app = make_app()
        self._stopping = False

    async def start(self) -> bool:
        """True once started; False if `stop()` came first."""
        # faust and mode log every service start/stop at INFO: keep their warnings and errors only.
        for name in ("faust", "mode"):
            logging.getLogger(name).setLevel(logging.WARNING)
        return await until_done(
            self._start_once,
            what="starting the rating stream (faust)",
            stopping=lambda: self._stopping,
            on_failure=self._discard,
        )

    async def _start_once(self) -> None:
        await self.app.start()

    async def _discard(self) -> None:
        failed, self.app = self.app, self._make_app()
        await failed.stop()

    async def stop(self) -> None:
        self._stopping = True
        await self.app.stop()
