"""The live feed continues the seeded households: valid messages, readings once a day per meter,
monotonic registers, payments with unique references; pacing follows the rate."""

from __future__ import annotations

import json
from datetime import date

from backoffice_simulator.generator import Scenario, generate
from backoffice_simulator.ledger import SimLedger, is_valid
from backoffice_simulator.stream import LiveFeed, paced

TODAY = date(2026, 11, 26)


def test_the_feed_continues_the_world() -> None:
    world = generate(Scenario(seed=4, accounts=10, months=3, today=TODAY))
    last_values = {no: h.meter.value for no, h in world.households.items()}
    feed = LiveFeed(world, run_id="t1", today=TODAY)
    messages = [feed.next() for _ in range(60)]
    assert all(is_valid(m.topic, m.value) for m in messages)
    readings = [json.loads(m.value)["payload"] for m in messages if m.event_type == "GridReadingTaken"]
    payments = [json.loads(m.value)["payload"] for m in messages if m.event_type == "PaymentReported"]
    assert 0 < len(readings) <= 10 and payments
    assert len({r["account_no"] for r in readings}) == len(readings)  # once a day per household
    for r in readings:
        assert r["reading_date"] == TODAY.isoformat()
        assert world.households[r["account_no"]].meter.serial == r["meter_serial"]
        assert float(r["value"]) >= float(last_values[r["account_no"]]) or float(r["value"]) < 10_000
    assert len({p["payment_id"] for p in payments}) == len(payments)
    assert all(p["paid_on"] == TODAY.isoformat() for p in payments)
    # the same run id again: the same messages (idempotent); another run id: other payments
    again = LiveFeed(generate(Scenario(seed=4, accounts=10, months=3, today=TODAY)), run_id="t1", today=TODAY)
    assert [m.value for m in messages] == [again.next().value for _ in range(60)]
    other = LiveFeed(generate(Scenario(seed=4, accounts=10, months=3, today=TODAY)), run_id="t2", today=TODAY)
    other_ids = {json.loads(m.value)["payload"].get("payment_id") for m in (other.next() for _ in range(60))}
    assert not other_ids & {p["payment_id"] for p in payments}
    ledger = SimLedger().record_all(world.messages + messages)
    assert sum(ledger.paid(no) for no in world.households) > 0


async def test_pacing_follows_the_rate() -> None:
    world = generate(Scenario(seed=4, accounts=5, months=2, today=TODAY))
    feed = LiveFeed(world, run_id="pace", today=TODAY)
    sent = 0
    async for batch in paced(feed, rate=50, duration_s=1.0):
        sent += len(batch)
    assert 0 < sent <= 50  # never ahead of the rate (how far behind depends on the machine)
