"""Seeding through the real stack: the back-office's messages go through every service's real ingest
path (Kafka → ingress → event store → relay → projections), and the public API's totals equal the
simulator's own ledger of what it sent.

Two copies of the same households are seeded under two account-number prefixes: one cleanly, one with
chaos (half the messages duplicated, payments re-reported under new event ids, most messages out of
order across topics, malformed messages of every kind beside them). Both must end with the same totals,
and the malformed ones must be in the dead-letter topics. Then a malformed payment is fixed and replayed
from its DLQ with the tool, and appears in the API.

What is compared (and why not more): per account, the payments (id, date, amount, bank) and the paid
amount of each month are exactly the simulator's, and the opening balance is the account's; accrued and
corrections are the calculator's rating of the readings (not the simulator's to know), so the clean and
the chaotic copy must agree on them in total, and each account's closing balance must be opening +
accrued + corrections − paid. Per month they may legitimately differ: a period closed before its reading
arrived is estimated, and the estimate is reversed in the period of the next actual reading.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from backoffice_simulator.chaos import Chaos, ChaosConfig, malformed_message
from backoffice_simulator.dlq import Fix, list_dead_letters, replay
from backoffice_simulator.generator import Month, Scenario, almaty_today, generate
from backoffice_simulator.kafka import ensure_topics, publish
from backoffice_simulator.ledger import SimLedger
from backoffice_simulator.portal import ApiError, PortalClient
from backoffice_simulator.wire import OutMessage, almaty, message
from contracts import backoffice as bo
from tests.backoffice.support import end_offsets, fresh_prefix, link_when_ready, new_user
from tests.support.stack import eventually

pytestmark = pytest.mark.stack

ACCOUNTS = 3
MONTHS = 4
# A bound on progress, not a timing assertion: in CI this runs late, on a loaded 2-core machine, behind
# every earlier test's messages on the shared topics (it once failed at 180 s).
CONVERGE_S = 600


def _scenario(prefix: str) -> Scenario:
    return Scenario(
        seed=424242,
        accounts=ACCOUNTS,
        months=MONTHS,
        account_prefix=prefix,
        missing_rate=0.0,
        new_accounts_rate=0.0,
    )


async def _api_view(client: PortalClient, ledger: SimLedger, no: str) -> dict[str, Any]:
    a = ledger.accounts[no]
    assert a.opened_on is not None
    first = str(Month.of(a.opened_on))
    last = str(Month.of(almaty_today()))
    try:
        services = await client.services_of(no, first, last)
        payments = await client.payments(no, a.opened_on.isoformat(), almaty_today().isoformat())
    except ApiError as exc:  # 404 until the ledger's own projection of AccountLinked has the link
        if exc.status != 404:
            raise
        return {"periods": [], "payments": [], "not_linked": True}
    electricity = next((s for s in services if s["service_code"] == "electricity"), None)
    return {"periods": electricity["periods"] if electricity else [], "payments": payments}


def _mismatches(view: dict[str, Any], ledger: SimLedger, no: str) -> list[str]:
    a = ledger.accounts[no]
    if view.get("not_linked"):
        return [f"{no}: the ledger does not know the link yet (404)"]
    problems: list[str] = []
    expected = sorted(
        (p.payment_id, p.paid_on.isoformat(), f"{p.amount:.2f}", p.bank)
        for p in a.live_payments(ledger.cancelled[no])
    )
    got = sorted((p["payment_id"], p["date"], p["amount"], p["bank"]) for p in view["payments"])
    if got != expected:
        problems.append(f"{no} payments: api {got} != simulator {expected}")
    periods = view["periods"]
    if not periods:
        return [*problems, f"{no}: no electricity periods yet"]
    paid = {p["period"]: Decimal(p["paid"]) for p in periods if Decimal(p["paid"]) != 0}
    if paid != ledger.paid_by_month(no):
        problems.append(f"{no} paid by month: api {paid} != simulator {ledger.paid_by_month(no)}")
    if Decimal(periods[0]["opening_balance"]) != a.opening_balance:
        problems.append(f"{no} opening balance: api {periods[0]['opening_balance']} != {a.opening_balance}")
    accrued = sum((Decimal(p["accrued"]) for p in periods), Decimal(0))
    corrections = sum((Decimal(p["corrections"]) for p in periods), Decimal(0))
    total_paid = sum((Decimal(p["paid"]) for p in periods), Decimal(0))
    closing = Decimal(periods[-1]["closing_balance"])
    if closing != Decimal(periods[0]["opening_balance"]) + accrued + corrections - total_paid:
        problems.append(f"{no}: closing {closing} != opening + accrued + corrections − paid")
    readings_months = {d.strftime("%Y-%m") for d, _ in a.readings.values()}
    charged = {p["period"] for p in periods if Decimal(p["accrued"]) != 0}
    if not readings_months <= charged:
        problems.append(
            f"{no}: months with readings but nothing accrued: {sorted(readings_months - charged)}"
        )
    return problems


def _totals(view: dict[str, Any]) -> tuple[Decimal, Decimal, Decimal]:
    periods = view["periods"]
    charged = sum((Decimal(p["accrued"]) + Decimal(p["corrections"]) for p in periods), Decimal(0))
    paid = sum((Decimal(p["paid"]) for p in periods), Decimal(0))
    return charged, paid, Decimal(periods[-1]["closing_balance"]) if periods else Decimal(0)


@pytest.mark.timeout(CONVERGE_S + 1800)
async def test_seeded_history_and_its_chaotic_twin_show_the_simulator_ledgers_totals(
    running_services: str, kafka_bootstrap: str
) -> None:
    since = await end_offsets(kafka_bootstrap, ["ledger.events.v1"])
    clean_world = generate(_scenario(fresh_prefix()))
    chaos_world = generate(_scenario(fresh_prefix()))
    chaos = Chaos(ChaosConfig(duplicates=0.5, disorder=0.8, malformed=0.15, window=60, seed=7))
    chaotic = chaos.apply(chaos_world.messages)
    clean_ledger = SimLedger().record_all(clean_world.messages)
    chaos_ledger = SimLedger().record_all(chaotic)
    assert sum(chaos_ledger.malformed.values()) == sum(chaos.report.malformed_per_topic().values()) > 0

    await ensure_topics(kafka_bootstrap)
    await publish(kafka_bootstrap, clean_world.messages, show_progress=False)
    await publish(kafka_bootstrap, chaotic, show_progress=False)

    async with PortalClient(running_services) as client:
        await new_user(client)
        pairs = list(zip(clean_world.households, chaos_world.households, strict=True))
        for clean_no, chaos_no in pairs:
            for ledger, no in ((clean_ledger, clean_no), (chaos_ledger, chaos_no)):
                proof = ledger.proof(no)
                assert proof is not None
                await link_when_ready(client, proof, kafka_bootstrap, since=since)

        last: list[str] = []

        async def converged() -> bool:
            problems: list[str] = []
            for clean_no, chaos_no in pairs:
                clean_view = await _api_view(client, clean_ledger, clean_no)
                chaos_view = await _api_view(client, chaos_ledger, chaos_no)
                problems += _mismatches(clean_view, clean_ledger, clean_no)
                problems += _mismatches(chaos_view, chaos_ledger, chaos_no)
                if not clean_view.get("not_linked") and _totals(clean_view)[0] <= 0:
                    problems.append(f"{clean_no}: nothing accrued yet")
                if _totals(clean_view) != _totals(chaos_view):
                    problems.append(
                        f"{clean_no} vs {chaos_no}: {_totals(clean_view)} != {_totals(chaos_view)}"
                    )
            last[:] = problems
            return not problems

        try:
            await eventually(converged, timeout_s=CONVERGE_S, every_s=3.0)
        except AssertionError as exc:
            raise AssertionError("\n".join(last)) from exc

        # Every malformed message we sent is in its topic's DLQ (as a source message, whoever rejected it).
        sent_bad = {(m.topic, m.value) for m in chaotic if m.kind.startswith("malformed:")}

        async def all_dead_lettered() -> bool:
            found: set[tuple[str, bytes]] = set()
            for topic in {t for t, _ in sent_bad}:
                found |= {
                    (g.source_topic, g.value or b"") for g in await list_dead_letters(kafka_bootstrap, topic)
                }
            missing = sent_bad - found
            last[:] = [f"not dead-lettered: {t} {v[:120]!r}" for t, v in sorted(missing)]
            return not missing

        try:
            await eventually(all_dead_lettered, timeout_s=300, every_s=3.0)
        except AssertionError as exc:
            raise AssertionError("\n".join(last)) from exc

        # A payment with three decimals is dead-lettered; fixed and replayed, it is in the API.
        no = pairs[0][0]
        template = next(m for m in clean_world.messages if m.event_type == "PaymentReported" and m.key == no)
        new_payment = _payment(no, f"BOSIM{clean_world.scenario.prefix}FIX", "777.70")
        bad = malformed_message(template.topic, no, "amount_three_decimals", new_payment)
        await publish(kafka_bootstrap, [bad], show_progress=False)
        bad_id = json.loads(bad.value)["event_id"]

        async def dead_lettered() -> bool:
            groups = await list_dead_letters(kafka_bootstrap, bo.PAYMENTS)
            return any(g.event_id == bad_id for g in groups)

        await eventually(dead_lettered, timeout_s=180, every_s=1.0)
        fix = Fix(partition=None, offset=None, event_id=bad_id, merge={"payload": {"amount": "777.70"}})
        outcomes = await replay(kafka_bootstrap, bo.PAYMENTS, fixes=[fix])
        assert [o.action for o in outcomes if o.group.event_id == bad_id] == ["fixed"]
        again = await replay(kafka_bootstrap, bo.PAYMENTS, fixes=[fix])
        assert [o.action for o in again if o.group.event_id == bad_id] == ["already"]

        async def replayed_payment_listed() -> bool:
            a = clean_ledger.accounts[no]
            assert a.opened_on is not None
            payments = await client.payments(no, a.opened_on.isoformat(), almaty_today().isoformat())
            return any(
                p["payment_id"] == f"BOSIM{clean_world.scenario.prefix}FIX" and p["amount"] == "777.70"
                for p in payments
            )

        await eventually(replayed_payment_listed, timeout_s=180, every_s=1.0)


def _payment(no: str, payment_id: str, amount: str) -> OutMessage:
    today = almaty_today()
    payload = bo.PaymentReported(
        payment_id=payment_id, account_no=no, amount=Decimal(amount), paid_on=today, bank="Halyk Bank"
    )
    return message(payload, key=no, id_key=f"test-payment:{payment_id}", at=almaty(today))


def test_the_scenario_is_small() -> None:
    """The test above publishes to the shared topics, which keep everything forever: keep it small."""
    world = generate(_scenario("900000"))
    assert len(world.messages) < 80
