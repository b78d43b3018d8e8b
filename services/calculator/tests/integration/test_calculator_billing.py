"""The monthly billing run over many accounts, with duplicate closes and a re-run; an estimate trued up
by a later actual reading; the faust rating agent restarted and redelivered to."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from decimal import Decimal
from typing import Any

import orjson

from contracts.backoffice import BILLING
from contracts.events.calculator import TOPIC as CALCULATOR_TOPIC
from tests.support.stack import eventually, produce

from .conftest import OUR_PERIOD_CLOSINGS, Calc, TopicWatcher, account_number, backoffice_message


def period_closed(period: str, event_id: uuid.UUID | None = None) -> tuple[bytes, bytes]:
    """A PeriodClosed of this test (the tests' calculators ignore the other suites' closings)."""
    event_id = event_id or uuid.uuid4()
    OUR_PERIOD_CLOSINGS.add(event_id)
    return period.encode(), backoffice_message("PeriodClosed", {"period": period}, event_id)


async def run_completed(calc: Calc, period: str) -> None:
    async def done() -> bool:
        rows = await calc.fetch(
            "SELECT completed_at IS NOT NULL FROM billing_runs WHERE period = %s", (period,)
        )
        return bool(rows) and bool(rows[0][0])

    await eventually(done, timeout_s=90)


async def test_billing_run_over_many_accounts_with_duplicates_and_a_rerun(calc: Calc) -> None:
    period = "2025-06"
    with_reading = [account_number() for _ in range(15)]
    estimated = [account_number() for _ in range(33)]
    later_reading = [account_number() for _ in range(2)]  # read in July only: June estimated, reversed
    everyone = with_reading + estimated + later_reading
    async with TopicWatcher(calc.bootstrap, CALCULATOR_TOPIC) as topic:
        for account in everyone:
            await calc.open_account(account, opened_on=dt.date(2025, 5, 1), residents=2)
        await calc.wait_projected(everyone)
        reading_ids = {}
        for account, day in [(a, "2025-06-15") for a in with_reading] + [
            (a, "2025-07-03") for a in later_reading
        ]:
            r = await calc.client.post(
                f"/internal/v1/accounts/{account}/readings",
                json={"reading_date": day, "value": "1300"},
                headers=calc.auth(),
            )
            assert r.status_code == 201, r.text
            reading_ids[account] = r.json()["reading_id"]

        # Close June: the same message twice (redelivery), and a duplicate close with its own event id.
        first_close = uuid.uuid4()
        await produce(
            calc.bootstrap,
            BILLING,
            [period_closed(period, first_close), period_closed(period, first_close), period_closed(period)],
        )
        await run_completed(calc, period)

        async def all_billed() -> bool:
            rows = await calc.fetch(
                "SELECT count(*) FROM period_billing WHERE period = %s AND status = 'billed' AND account_no = ANY(%s)",
                (period, everyone),
            )
            return int(rows[0][0]) == len(everyone)

        await eventually(all_billed, timeout_s=90)

        # Close it again (a re-run): nothing changes.
        before = await calc.fetch("SELECT count(*), max(position) FROM events")
        await produce(calc.bootstrap, BILLING, [period_closed(period)])
        await eventually(lambda: _rerun_seen(calc, period, before[0][1]), timeout_s=60)
        await run_completed(calc, period)
        assert await calc.fetch(
            "SELECT count(*) FROM events WHERE position > %s AND stream_id LIKE 'billing-period:%%'",
            (before[0][1],),
        ) == [(0,)]

        # Per account and period: one charge (the reading's or the estimate) and one PeriodBilled.
        rows = await calc.fetch(
            "SELECT payload->>'account_no', event_type, payload->>'estimated' FROM events"
            " WHERE event_type IN ('ChargeCalculated', 'PeriodBilled') AND payload->>'period' = %s",
            (period,),
        )
        kinds = Counter((a, t, e) for a, t, e in rows)
        for account in with_reading:
            assert (
                kinds[(account, "ChargeCalculated", "false")] == 1
                and kinds[(account, "ChargeCalculated", "true")] == 0
            )
        for account in estimated:
            assert (
                kinds[(account, "ChargeCalculated", "true")] == 1
                and kinds[(account, "ChargeCalculated", "false")] == 0
            )
        for account in later_reading:
            assert kinds[(account, "ChargeCalculated", "true")] == 1
        assert all(kinds[(a, "PeriodBilled", None)] == 1 for a in everyone)
        # The July readings cover June's days: their estimates are reversed in July, once (whether the
        # reading was rated before the run, `rev-{reading}-2025-06`, or after it, `rev-{reading}`).
        for account in later_reading:

            async def reversed_once(account: str = account) -> bool:
                rows = await calc.fetch(
                    "SELECT period, amount::text, reversed_charge_ids FROM estimate_reversals WHERE account_no = %s",
                    (account,),
                )
                return len(rows) == 1

            await eventually(reversed_once, timeout_s=90)
            [(july, amount, ids)] = await calc.fetch(
                "SELECT period, amount::text, reversed_charge_ids FROM estimate_reversals WHERE account_no = %s",
                (account,),
            )
            assert (july, amount, ids) == ("2025-07", "-3244.12", [f"est-{account}-{period}"])

        # The same on Kafka, once the relay has published everything. (Other calculator instances on the
        # shared cluster, e.g. the running stack's, see the same PeriodClosed and accounts and publish their
        # own charges for these accounts: only this instance's events are counted, by event id.)
        ours = {
            str(r[0])
            for r in await calc.fetch(
                "SELECT event_id FROM events WHERE event_type IN ('ChargeCalculated', 'PeriodBilled')"
                " AND payload->>'period' = %s AND payload->>'account_no' = ANY(%s)",
                (period, everyone),
            )
        }
        assert len(ours) == len(with_reading) + len(estimated) + len(later_reading) + len(everyone)
        found = await topic.wait_for(lambda e: e.get("event_id") in ours, count=len(ours), timeout_s=90)
        assert {e["event_id"] for e in found} == ours
        on_kafka = Counter(
            (e["payload"]["account_no"], e["event_type"]) for e in {e["event_id"]: e for e in found}.values()
        )
        assert all(on_kafka[(a, "PeriodBilled")] == 1 for a in everyone)
        assert all(on_kafka[(a, "ChargeCalculated")] == 1 for a in with_reading + estimated + later_reading)

        # An estimate without history: flat, 2 residents, no stove, June (30 days):
        # 90 × 2 × 30 / 30.5 = 177.05 kWh; 177.05 × 16.36 = 2896.54; VAT 347.58; total 3244.12
        async def stored(event_type: str, account: str) -> dict[str, Any]:
            rows = await calc.fetch(
                "SELECT json_build_object('stream_id', stream_id, 'payload', payload)::text FROM events"
                " WHERE event_type = %s AND payload->>'account_no' = %s AND payload->>'period' = %s",
                (event_type, account, period),
            )
            assert len(rows) == 1
            return dict(orjson.loads(rows[0][0]))

        estimate = (await stored("ChargeCalculated", estimated[0]))["payload"]
        assert estimate["estimated"] is True and estimate["charge_id"] == f"est-{estimated[0]}-{period}"
        assert (estimate["days"], estimate["consumption_kwh"], estimate["total"]) == (30, "177.05", "3244.12")
        assert estimate["previous"] is None and estimate["current"] is None
        billed = await stored("PeriodBilled", with_reading[0])
        assert billed["payload"]["charge_ids"] == [f"chg-{reading_ids[with_reading[0]]}"]
        assert billed["stream_id"] == f"billing-period:{with_reading[0]}:{period}"


async def _rerun_seen(calc: Calc, period: str, _: Any) -> bool:
    rows = await calc.fetch(
        "SELECT requested_at > now() - interval '1 hour', completed_at FROM billing_runs WHERE period = %s",
        (period,),
    )
    return bool(rows)


async def test_estimates_are_trued_up_by_a_later_actual_reading(calc: Calc) -> None:
    account = account_number()
    async with TopicWatcher(calc.bootstrap, CALCULATOR_TOPIC) as topic:
        await calc.open_account(
            account, opened_on=dt.date(2025, 5, 1), residents=2, initial_reading="1000.00"
        )
        await calc.wait_projected([account])
        # May (from the 1st, 31 days), then June: estimated from the norm (no history).
        await produce(calc.bootstrap, BILLING, [period_closed("2025-05"), period_closed("2025-06")])

        # (Wait on this instance's store: another calculator on the shared cluster publishes the same ids.)
        await calc.wait_charge(f"est-{account}-2025-05")
        await calc.wait_charge(f"est-{account}-2025-06")
        totals = dict(
            await calc.fetch("SELECT period, total::text FROM charges WHERE account_no = %s", (account,))
        )
        consumption = dict(
            await calc.fetch(
                "SELECT period, consumption_kwh::text FROM charges WHERE account_no = %s", (account,)
            )
        )
        # May: 90 × 2 × 31 / 30.5 = 182.95 kWh × 16.36 = 2993.06, VAT 359.17 → 3352.23
        assert (consumption["2025-05"], totals["2025-05"]) == ("182.95", "3352.23")
        assert totals["2025-06"] == "3244.12"

        # The actual reading of 2025-07-10 is rated from the last ACTUAL reading (the install, 2025-05-01):
        # 70 days, 420 kWh, split at the 2025-07-01 tariff row: [05-01, 07-01) 61 days → 420 × 61/70 = 366.00 kWh
        # × 16.36 = 5987.76 (VAT 718.53); [07-01, 07-10) 9 days → 54.00 kWh × 31.85 = 1719.90 (VAT 206.39);
        # net 7707.66 + VAT 924.92 = 8632.58. Both estimates are reversed in July.
        r = await calc.client.post(
            f"/internal/v1/accounts/{account}/readings",
            json={"reading_date": "2025-07-10", "value": "1420"},
            headers=calc.auth(),
        )
        assert r.status_code == 201, r.text
        reading_id = r.json()["reading_id"]
        [charge] = await topic.wait_for(
            lambda e: (
                e.get("event_type") == "ChargeCalculated" and e["payload"]["charge_id"] == f"chg-{reading_id}"
            )
        )
        assert charge["payload"]["previous"] == {"date": "2025-05-01", "value": "1000.00"}
        assert (charge["payload"]["days"], charge["payload"]["total"], charge["payload"]["period"]) == (
            70,
            "8632.58",
            "2025-07",
        )
        assert [(x["kwh"], x["rate"], x["amount"]) for x in charge["payload"]["lines"]] == [
            ("366.00", "16.36", "5987.76"),
            ("54.00", "31.85", "1719.90"),
        ]
        [reversal] = await topic.wait_for(
            lambda e: (
                e.get("event_type") == "EstimateReversed"
                and e["payload"]["correction_id"] == f"rev-{reading_id}"
            )
        )
        p = reversal["payload"]
        assert p["period"] == "2025-07" and p["account_no"] == account
        assert Decimal(p["amount"]) == -(Decimal("3352.23") + Decimal("3244.12"))
        assert sorted(p["reversed_charge_ids"]) == [f"est-{account}-2025-05", f"est-{account}-2025-06"]
        assert reversal["stream_id"] == f"billing-period:{account}:2025-07"

        # Closing May again changes nothing (the estimate exists, reversed; the period is billed).
        before = await calc.fetch("SELECT count(*) FROM events")
        await produce(calc.bootstrap, BILLING, [period_closed("2025-05")])
        await run_completed(calc, "2025-05")
        assert await calc.fetch("SELECT count(*) FROM events") == before

        # The chart shows the actual consumption spread over May, June, July; no estimate left.
        r = await calc.client.get(
            f"/internal/v1/accounts/{account}/consumption?months=120", headers=calc.auth()
        )
        months = {m["period"]: m for m in r.json()}
        assert (
            months["2025-05"]["consumption_kwh"],
            months["2025-06"]["consumption_kwh"],
            months["2025-07"]["consumption_kwh"],
        ) == ("186.00", "180.00", "54.00")
        assert not any(m["estimated"] for m in months.values())

        # The tables mirroring calculator's own streams rebuild from the event store to the same state.
        snapshot_sql = (
            "SELECT (SELECT json_agg(c ORDER BY charge_id)::text FROM (SELECT charge_id, period, estimated, total,"
            " reversed_by FROM charges) c), (SELECT json_agg(r ORDER BY reading_id)::text FROM (SELECT reading_id,"
            " reading_date, value, consumption_kwh FROM readings) r), (SELECT json_agg(b ORDER BY account_no, period)::text"
            " FROM (SELECT account_no, period, status, charge_ids FROM period_billing) b)"
        )
        before_rebuild = await calc.fetch(snapshot_sql)
        async with calc.svc.pool.connection() as conn:
            assert await calc.background.components.own.rebuild(conn) > 0
            assert await calc.background.components.catalog.rebuild(conn) >= 4
        assert await calc.fetch(snapshot_sql) == before_rebuild


async def test_rating_agent_survives_restart_and_redelivery(calc: Calc) -> None:
    account = account_number()
    await calc.open_account(account, opened_on=dt.date(2025, 1, 1))
    await calc.wait_projected([account])
    app_id = calc.background.agent.app.conf.id
    await calc.background.stop()  # the agent is down: readings are accepted, charges wait

    r = await calc.client.post(
        f"/internal/v1/accounts/{account}/readings",
        json={"reading_date": "2025-02-01", "value": "1100"},
        headers=calc.auth(),
    )
    assert r.status_code == 201
    reading_id = r.json()["reading_id"]
    # (The fresh database replays the topics' history: other tests' accounts are billed here too.)
    assert await calc.fetch("SELECT charge_id FROM charges WHERE account_no = %s", (account,)) == []

    from calculator.worker import Background

    background = Background(
        calc.background.settings, calc.svc.pool, calc.background.components, rating_app_id=app_id
    )
    calc.background = background
    await background.start()
    await calc.wait_charge(f"chg-{reading_id}")

    # Redelivery (at-least-once): the same record again finds its charge and appends nothing.
    rows = await calc.fetch(
        "SELECT event_id FROM events WHERE event_type = 'ReadingSubmitted' AND payload->>'reading_id' = %s",
        (reading_id,),
    )
    raw = (
        await calc.fetch(
            "SELECT json_build_object('event_id', event_id, 'event_type', event_type, 'schema_version', schema_version,"
            " 'stream_id', stream_id, 'stream_version', stream_version, 'occurred_at', occurred_at, 'producer', producer,"
            " 'payload', payload)::text FROM events WHERE event_id = %s",
            (rows[0][0],),
        )
    )[0][0]
    assert await background.step.handle(raw.encode()) == "duplicate"
    assert await calc.fetch(
        "SELECT count(*) FROM events WHERE event_type = 'ChargeCalculated' AND payload->>'account_no' = %s",
        (account,),
    ) == [(1,)]
