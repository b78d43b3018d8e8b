"""The worker's background parts against the real stack: the faust rating agent waits out a Kafka it
cannot reach at start (and keeps its data directory where it is told, not in the current directory), and
the billing-run loop is woken by PostgreSQL's NOTIFY instead of waiting for its next turn."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import faust
import psycopg

from calculator.adapters.loops import Wakeup
from calculator.adapters.rating_agent import RatingAgent, RatingStream, rating_app
from calculator.worker import Components
from tests.support.stack import eventually


async def test_rating_agent_retries_its_start_until_kafka_is_reachable(
    kafka_bootstrap: str, make_database: Callable[[], str], faust_data_dir: Path
) -> None:
    app_id = f"calculator-rating-test-start-{uuid.uuid4().hex[:8]}"
    tries: list[str] = []

    def make_app() -> faust.App:
        # The first two apps point at a port nobody listens on: Kafka "down" at start.
        bootstrap = "127.0.0.1:1" if len(tries) < 2 else kafka_bootstrap
        tries.append(bootstrap)
        step = RatingStream(None, Components().rating)  # type: ignore[arg-type]  # never reached
        # (A directory whose parents do not exist yet, like `.local/faust` on a fresh checkout.)
        return rating_app(app_id, bootstrap, step, datadir=faust_data_dir / "new" / f"{app_id}-data")

    cwd_before = set(os.listdir("."))
    agent = RatingAgent(make_app)
    try:
        started = await asyncio.wait_for(agent.start(), timeout=300)
        assert started
        assert tries == ["127.0.0.1:1", "127.0.0.1:1", kafka_bootstrap]
        assert agent.app.conf.broker[0].port == int(kafka_bootstrap.rsplit(":", 1)[1])
    finally:
        await agent.stop()
    assert (faust_data_dir / "new" / f"{app_id}-data").is_dir()
    assert not any(name.startswith(app_id) for name in set(os.listdir(".")) - cwd_before)


async def test_billing_loop_wakes_up_on_notify(make_database: Callable[[], str]) -> None:
    dsn = make_database()
    channel = f"calculator_test_{uuid.uuid4().hex[:8]}"
    wakeup = Wakeup(dsn, channel, timeout_s=3600)  # without the NOTIFY it would sleep for an hour
    wakeup.start()
    try:
        woke = asyncio.create_task(wakeup())
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:

            async def notified() -> bool:
                # (The listener connects in the background: notify until it has heard one.)
                await conn.execute("SELECT pg_notify(%s, 'period')", (channel,))
                return woke.done()

            await eventually(notified, timeout_s=120)
    finally:
        await wakeup.stop()
