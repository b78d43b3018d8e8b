"""The live feed: readings and payments of the seeded households, today, at a steady rate.

It starts from the households' state at the end of the seeded scenario (their meters' last values and
reading dates), so the readings it sends continue their registers. A household is read at most once
per day (the calculator refuses a second reading dated the same day). Payments carry bank references
made of the run id and a counter, so two runs with different `run_id`s are different payments, while
the same run id re-sends the same ones (idempotent, like the seed).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date, time
from decimal import Decimal

from backoffice_simulator import reference as ref
from backoffice_simulator.chaos import Chaos
from backoffice_simulator.generator import Household, World, _advance, _ceil, almaty_today
from backoffice_simulator.kafka import producer
from backoffice_simulator.wire import OutMessage, almaty, message
from contracts import backoffice as bo


@dataclass
class StreamStats:
    sent: int = 0
    readings: int = 0
    payments: int = 0
    ticks: int = 0


class LiveFeed:
    """An endless, deterministic sequence of today's readings and payments for a world's households."""

    def __init__(self, world: World, *, run_id: str = "live", today: date | None = None) -> None:
        self.households = [h for h in world.households.values() if h.meter is not None]
        self.today = today or almaty_today()
        self.run_id = run_id
        self._rng = random.Random(f"stream:{world.scenario.seed}:{run_id}:{self.today}")  # noqa: S311
        self._counter = 0

    def _readable(self) -> list[Household]:
        return [h for h in self.households if h.last_reading is not None and h.last_reading < self.today]

    def next(self) -> OutMessage:
        self._counter += 1
        readable = self._readable()
        at = almaty(
            self.today, time(self._rng.randint(9, 20), self._rng.randint(0, 59), self._rng.randint(0, 59))
        )
        if readable and self._rng.random() < 0.5:
            h = self._rng.choice(readable)
            assert h.last_reading is not None
            value = _advance(h.meter, h.consumption(self._rng, h.last_reading, self.today))
            h.last_reading = self.today
            return message(
                bo.GridReadingTaken(
                    account_no=h.account_no, meter_serial=h.meter.serial, reading_date=self.today, value=value
                ),
                key=h.account_no,
                id_key=f"reading:{h.account_no}:{self.today}",
                at=at,
            )
        h = self._rng.choice(self.households)
        name, code, _ = self._rng.choices(ref.BANKS, weights=[w for *_, w in ref.BANKS])[0]
        amount = _ceil(Decimal(self._rng.randint(1500, 25000)), 10) + Decimal("0.00")
        amount += Decimal(self._rng.randint(0, 99)) / 100
        payment_id = f"{code}{self.today:%Y%m%d}L{self.run_id[:12].upper()}{self._counter:08d}"
        return message(
            bo.PaymentReported(
                payment_id=payment_id,
                account_no=h.account_no,
                amount=amount,
                paid_on=self.today,
                bank=name,
                service_code="electricity",
            ),
            key=h.account_no,
            id_key=f"payment:{payment_id}",
            at=at,
        )


async def paced(feed: LiveFeed, *, rate: float, duration_s: float) -> AsyncIterator[list[OutMessage]]:
    """Batches of messages, one batch per tick of 0.2 s (or 1/rate, if slower), for `duration_s`."""
    loop = asyncio.get_running_loop()
    tick = max(0.2, 1.0 / rate) if rate > 0 else 1.0
    started = loop.time()
    due = 0.0
    emitted = 0
    while loop.time() - started < duration_s:
        elapsed = loop.time() - started
        due = rate * elapsed
        count = int(due) - emitted
        if count > 0:
            emitted += count
            yield [feed.next() for _ in range(count)]
        await asyncio.sleep(tick)


async def run_stream(
    world: World,
    *,
    bootstrap: str,
    rate: float,
    duration_s: float,
    chaos: Chaos | None = None,
    run_id: str = "live",
    on_batch: Callable[[StreamStats], None] | None = None,
) -> StreamStats:
    feed = LiveFeed(world, run_id=run_id)
    stats = StreamStats()
    client = producer(bootstrap, client_id="backoffice-sim-stream")
    await client.start()
    try:
        async for batch in paced(feed, rate=rate, duration_s=duration_s):
            out = chaos.apply(batch) if chaos is not None else batch
            futures = [await client.send(m.topic, value=m.value, key=m.key.encode()) for m in out]
            for future in futures:
                await future
            stats.ticks += 1
            stats.sent += len(out)
            stats.readings += sum(1 for m in batch if m.event_type == "GridReadingTaken")
            stats.payments += sum(1 for m in batch if m.event_type == "PaymentReported")
            if on_batch is not None:
                on_batch(stats)
    finally:
        await client.stop()
    return stats
