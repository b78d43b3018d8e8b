"""The same facts in different orders end with the same charges (BACKOFFICE_EVENTS.md: messages arrive late
and out of order across topics).

- A ResidentsChanged that arrives after a reading dated after its effective date was rated: the charge is
  corrected by the difference (an `adj1-chg-…` correction on Kafka), so the account ends to the tiyn
  where its twin, which got the change first, started.
- A period closed before the account was known: the account is still billed for it (the run re-opens).
- A grid reading that decides to park while the account's meter is being committed is not lost.
- A grid reading on a meter that was replaced after its date, arriving after the MeterReplaced: accepted.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import orjson
from pydantic import BaseModel

from calculator.adapters.accounts import AccountsProjection
from calculator.adapters.ingress import GridReadingIngress, ParkedGridReadings
from calculator.application.charges import ADJUSTMENT_REASON
from contracts import backoffice
from contracts.backoffice import BILLING
from contracts.envelope import Envelope, IngressEnvelope
from contracts.events import accounts as acc
from contracts.events.calculator import TOPIC as CALCULATOR_TOPIC
from service_runtime.consumers import CanonicalEvent, IngressMessage
from tests.support.stack import eventually, produce

from .conftest import Calc, TopicWatcher, account_number, produce_canonical
from .test_calculator_billing import period_closed


async def posted_total(calc: Calc, account: str) -> Decimal:
    """Everything posted for the account: charges, their adjustments, true-ups (what the ledger sums)."""
    rows = await calc.fetch(
        "SELECT coalesce((SELECT sum(total + adjusted) FROM charges WHERE account_no = %s), 0)"
        " + coalesce((SELECT sum(amount) FROM estimate_reversals WHERE account_no = %s), 0)",
        (account, account),
    )
    return Decimal(rows[0][0])


async def test_a_late_residents_change_ends_where_the_early_one_started(calc: Calc) -> None:
    """The worked example of the unit test (tiered, no stove, 2025-08-01 at 0 → 2025-09-01 at 400):
    16022.63 with 2 residents, 14273.32 with 3 (from 2025-08-15). `early` gets the change before its
    reading; `late` after its reading was rated: adjusted by −1749.31 in 2025-09."""
    early, late = account_number(), account_number()
    change_at = dt.date(2025, 8, 15)
    async with TopicWatcher(calc.bootstrap, CALCULATOR_TOPIC) as topic:
        for no in (early, late):
            await calc.open_account(
                no, opened_on=dt.date(2025, 8, 1), residents=2, tariff_option="tiered", initial_reading="0"
            )
        await calc.wait_projected([early, late])
        await _residents_changed(calc, early, 3, change_at)
        await eventually(lambda: _residents_known(calc, early, 3))

        reading_ids = {}
        for no in (early, late):
            r = await calc.client.post(
                f"/internal/v1/accounts/{no}/readings",
                json={"reading_date": "2025-09-01", "value": "400"},
                headers=calc.auth(),
            )
            assert r.status_code == 201, r.text
            reading_ids[no] = r.json()["reading_id"]
            await calc.wait_charge(f"chg-{reading_ids[no]}")
        totals = dict(
            await calc.fetch(
                "SELECT account_no, total::text FROM charges WHERE account_no = ANY(%s)", ([early, late],)
            )
        )
        assert totals == {early: "14273.32", late: "16022.63"}

        await _residents_changed(calc, late, 3, change_at)
        correction_id = f"adj1-chg-{reading_ids[late]}"
        [adjustment] = await topic.wait_for(
            lambda e: (
                e.get("event_type") == "EstimateReversed" and e["payload"]["correction_id"] == correction_id
            ),
            timeout_s=120,
        )
        p = adjustment["payload"]
        assert (p["account_no"], p["period"], p["amount"], p["reason"]) == (
            late,
            "2025-09",
            "-1749.31",
            ADJUSTMENT_REASON,
        )
        assert p["reversed_charge_ids"] == [f"chg-{reading_ids[late]}"]
        assert adjustment["stream_id"] == f"billing-period:{late}:2025-09"
        assert await posted_total(calc, late) == await posted_total(calc, early) == Decimal("14273.32")

        # Nothing new: the reconciler posts nothing more (a request for the account is answered empty).
        service = calc.background.components.reconcile
        async with calc.svc.pool.connection() as conn:
            assert await service.reconcile(conn, late) == []
            assert await service.reconcile(conn, early) == []


async def test_a_period_closed_before_the_account_was_known_still_bills_it(calc: Calc) -> None:
    """June 2025 is closed (the run completes) before the account, opened 2025-05-01, is known. Once its
    AccountOpened arrives the run re-opens for it: the estimate from the norm (flat, 2 residents, 30
    days: 177.05 kWh, 3244.12) and PeriodBilled, exactly once."""
    period = "2025-06"
    await produce(calc.bootstrap, BILLING, [period_closed(period)])

    async def completed() -> bool:
        rows = await calc.fetch(
            "SELECT completed_at IS NOT NULL FROM billing_runs WHERE period = %s", (period,)
        )
        return bool(rows) and bool(rows[0][0])

    await eventually(completed, timeout_s=120)
    account = account_number()
    async with TopicWatcher(calc.bootstrap, CALCULATOR_TOPIC) as topic:
        await calc.open_account(account, opened_on=dt.date(2025, 5, 1), residents=2)
        await calc.wait_projected([account])
        await calc.wait_charge(f"est-{account}-{period}", timeout_s=120)
        # (This instance's event: the stack's calculator sees the same accounts and closings and may
        # publish the same deterministic ids on the shared topic.)
        rows: list[tuple[Any, ...]] = []

        async def stored() -> bool:
            nonlocal rows
            rows = await calc.fetch(
                "SELECT event_id::text, payload::text FROM events WHERE event_type = 'PeriodBilled'"
                " AND payload->>'account_no' = %s",
                (account,),
            )
            return bool(rows)

        await eventually(stored, timeout_s=120)
        [(billed_id, payload)] = rows
        assert orjson.loads(payload) == {
            "account_no": account,
            "period": period,
            "charge_ids": [f"est-{account}-{period}"],
        }
        assert await topic.wait_for(lambda e: e.get("event_id") == billed_id, timeout_s=120)
    assert await calc.fetch(
        "SELECT total::text, consumption_kwh::text FROM charges WHERE account_no = %s", (account,)
    ) == [("3244.12", "177.05")]
    await eventually(completed, timeout_s=120)
    assert await calc.fetch(
        "SELECT done FROM billing_run_items WHERE period = %s AND account_no = %s", (period, account)
    ) == [(True,)]
    # Closing again, or the account's sync running again, changes nothing.
    await produce(calc.bootstrap, BILLING, [period_closed(period)])
    await calc.background.billing_runner.sync_new_accounts()
    await eventually(completed, timeout_s=120)
    assert await calc.fetch(
        "SELECT count(*) FROM events WHERE stream_id = %s", (f"billing-period:{account}:{period}",)
    ) == [(2,)]


async def test_a_reading_parking_while_its_meter_commits_is_not_lost(calc: Calc) -> None:
    """The accounts projection has applied the account and its meter (and looked for parked readings:
    none) but not committed; the grid reading finds no account. It must not park behind the projection's
    back: it waits for the projection's transaction, looks again and is accepted."""
    account = account_number()
    own = calc.background.components.own
    projection = AccountsProjection(on_meter=ParkedGridReadings(own))
    ingress = GridReadingIngress(own)
    serial = f"M{account}"
    opened = _canonical(
        acc.account_stream(account),
        1,
        acc.AccountOpened(
            account_no=account,
            payer_name="Тестов Т.Т.",
            address="Алматы, ул. Тестовая, 1",
            residents=2,
            electric_stove=False,
            living_alone=False,
            tariff_option="flat",
            district_office_code="01",
            opened_on=dt.date(2025, 1, 1),
        ),
    )
    installed = _canonical(
        acc.account_stream(account),
        2,
        acc.MeterInstalled(
            account_no=account,
            serial=serial,
            digits=6,
            installed_on=dt.date(2025, 1, 1),
            initial_reading=Decimal("1000.00"),
        ),
    )
    reading = _grid_reading(account, serial, dt.date(2025, 2, 1), "1100.00")
    async with calc.svc.pool.connection() as projecting, calc.svc.pool.connection() as ingesting:
        cur = await ingesting.execute("SELECT pg_backend_pid()")
        ingest_pid = (await cur.fetchone() or (0,))[0]
        async with projecting.transaction():
            await projection.apply(projecting, opened)
            await projection.apply(projecting, installed)

            async def ingest() -> None:
                async with ingesting.transaction():
                    await ingress.handle(ingesting, reading)

            task = asyncio.create_task(ingest())

            async def waiting_for_the_lock() -> bool:
                rows = await calc.fetch(
                    "SELECT 1 FROM pg_locks WHERE pid = %s AND locktype = 'advisory' AND NOT granted",
                    (ingest_pid,),
                )
                return bool(rows) or task.done()

            await eventually(waiting_for_the_lock, timeout_s=60)
            assert not task.done()
        await asyncio.wait_for(task, timeout=60)
    assert await calc.fetch("SELECT value::text FROM readings WHERE account_no = %s", (account,)) == [
        ("1100.00",)
    ]
    assert await calc.fetch(
        "SELECT count(*) FROM parked_grid_readings WHERE account_no = %s", (account,)
    ) == [(0,)]


async def test_a_reading_on_a_meter_replaced_since_is_accepted_after_the_replacement(calc: Calc) -> None:
    """Meter A (6 digits, 1000.00 on 2025-01-01) replaced by B (0.00) on 2025-03-10 at 1180.00. The grid
    reading of A on 2025-02-20 (1150.00) arrives after the MeterReplaced: validated against A (in place that
    day), accepted and rated (50 days, 150 kWh); then B's reading of 2025-04-01 (30.00) is rated across the
    replacement: (1180 − 1150) + (30 − 0) = 60 kWh."""
    account = account_number()
    serial = await calc.open_account(account, opened_on=dt.date(2025, 1, 1), initial_reading="1000.00")
    await calc.wait_projected([account])
    await produce_canonical(
        calc.bootstrap,
        acc.TOPIC,
        [
            (
                acc.account_stream(account),
                3,
                acc.MeterReplaced(
                    account_no=account,
                    old_serial=serial,
                    final_reading=Decimal("1180.00"),
                    new_serial=f"B{account}",
                    digits=6,
                    initial_reading=Decimal("0.00"),
                    replaced_on=dt.date(2025, 3, 10),
                ),
            )
        ],
    )

    async def replaced() -> bool:
        return bool(
            await calc.fetch(
                "SELECT 1 FROM meters WHERE account_no = %s AND removed_on IS NOT NULL", (account,)
            )
        )

    await eventually(replaced)
    ingress = GridReadingIngress(calc.background.components.own)
    for message in (
        _grid_reading(account, serial, dt.date(2025, 2, 20), "1150.00"),
        _grid_reading(account, f"B{account}", dt.date(2025, 4, 1), "30.00"),
    ):
        async with calc.svc.pool.connection() as conn, conn.transaction():
            await ingress.handle(conn, message)

    async def rated() -> bool:
        rows = await calc.fetch("SELECT count(*) FROM charges WHERE account_no = %s", (account,))
        return int(rows[0][0]) == 2

    await eventually(rated, timeout_s=120)
    assert await calc.fetch(
        "SELECT days, consumption_kwh::text FROM charges WHERE account_no = %s ORDER BY from_date", (account,)
    ) == [(50, "150.00"), (40, "60.00")]


# --- helpers -------------------------------------------------------------------------------------------


async def _residents_changed(calc: Calc, account: str, residents: int, effective_from: dt.date) -> None:
    rows = await calc.fetch(
        "SELECT coalesce(max(stream_version), 2) FROM account_attributes WHERE account_no = %s", (account,)
    )
    await produce_canonical(
        calc.bootstrap,
        acc.TOPIC,
        [
            (
                acc.account_stream(account),
                max(int(rows[0][0]), 2) + 1,
                acc.ResidentsChanged(account_no=account, residents=residents, effective_from=effective_from),
            )
        ],
    )


async def _residents_known(calc: Calc, account: str, residents: int) -> bool:
    rows = await calc.fetch(
        "SELECT 1 FROM account_attributes WHERE account_no = %s AND attribute = 'residents' AND value = %s::jsonb",
        (account, str(residents)),
    )
    return bool(rows)


def _canonical(stream: str, version: int, payload: BaseModel) -> CanonicalEvent:
    from contracts.registry import registry

    spec = registry.spec_of(payload)
    envelope = Envelope(
        event_type=spec.event_type,
        schema_version=spec.version,
        stream_id=stream,
        stream_version=version,
        producer="accounts",
        payload=payload.model_dump(mode="json"),
    )
    return CanonicalEvent(envelope, payload, acc.TOPIC, 0, 0)


def _grid_reading(account: str, serial: str, day: dt.date, value: str) -> IngressMessage:
    payload = backoffice.GridReadingTaken(
        account_no=account, meter_serial=serial, reading_date=day, value=Decimal(value)
    )
    envelope: Any = IngressEnvelope(
        event_id=uuid.uuid4(),
        event_type="GridReadingTaken",
        schema_version=1,
        occurred_at=dt.datetime.now(dt.UTC),
        producer="backoffice",
        payload=payload.model_dump(mode="json"),
    )
    return IngressMessage(envelope, payload, account, backoffice.READINGS, 0, 0)
