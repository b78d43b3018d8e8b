"""The seeded world: deterministic, valid against the contracts, realistic, and its ledger adds up."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest

from backoffice_simulator import reference as ref
from backoffice_simulator.generator import (
    DEMO_ACCOUNTS,
    DEMO_LINKED,
    DEMO_MANUAL,
    Month,
    Scenario,
    generate,
)
from backoffice_simulator.ledger import SimLedger, parse
from backoffice_simulator.wire import NAMESPACE, OutMessage, almaty, event_id
from contracts import backoffice as bo
from contracts.envelope import IngressEnvelope
from contracts.registry import registry

TODAY = date(2026, 11, 26)
SCENARIO = Scenario(seed=11, accounts=40, months=12, demo=True, today=TODAY)


@pytest.fixture(scope="module")
def world():  # type: ignore[no-untyped-def]
    return generate(SCENARIO)


def test_same_seed_same_bytes_and_another_seed_other_data(world) -> None:  # type: ignore[no-untyped-def]
    again = generate(SCENARIO)
    assert [(m.topic, m.key, m.value) for m in again.messages] == [
        (m.topic, m.key, m.value) for m in world.messages
    ]
    other = generate(Scenario(seed=12, accounts=40, months=12, today=TODAY))
    # Only what is the same for everyone is shared: offices, tariffs, period closings (one id per period).
    shared = {m.value for m in world.messages} & {m.value for m in other.messages}
    assert {json.loads(v)["event_type"] for v in shared} <= {
        "DistrictOfficeUpdated",
        "TariffPublished",
        "VatRateChanged",
        "PeriodClosed",
    }


def test_adding_accounts_or_months_changes_nothing_already_sent(world) -> None:  # type: ignore[no-untyped-def]
    smaller = generate(Scenario(seed=11, accounts=10, months=12, today=TODAY, reference_data=False))
    # (period closings carry their scenario: a smaller one closes the same months with its own ids)
    assert {m.value for m in smaller.messages if m.event_type != "PeriodClosed"} <= {
        m.value for m in world.messages
    }
    # The demo history grows at its end only: re-running the demo months later appends.
    start = Month(2024, 11)
    first = generate(Scenario(seed=1, accounts=0, months=24, start=start, demo=True, demo_start=start))
    later = generate(
        Scenario(
            seed=1, accounts=0, months=24, start=start, demo=True, demo_start=start, demo_end=start.plus(26)
        )
    )
    old = {m.value for m in first.messages if m.event_type != "PeriodClosed"}
    new = {m.value for m in later.messages}
    # only the payments of the last month of the shorter run may differ (nothing came after them)
    assert len(old - new) <= 3
    assert {m.event_id for m in first.messages} - {m.event_id for m in later.messages} <= {
        m.event_id for m in first.messages if m.at.date() >= start.plus(23).first
    }


def test_every_message_is_a_valid_backoffice_message_in_an_almaty_envelope(world) -> None:  # type: ignore[no-untyped-def]
    for m in world.messages:
        document = json.loads(m.value)
        envelope = IngressEnvelope.model_validate(document)
        assert envelope.producer == "backoffice" and envelope.schema_version == 1
        spec = registry.spec(m.topic, envelope.event_type)
        payload = registry.parse(m.topic, envelope.event_type, 1, envelope.payload)
        assert isinstance(payload, spec.model)
        offset = envelope.occurred_at.utcoffset()
        assert offset is not None
        expected = 6 if envelope.occurred_at.date() < date(2024, 3, 1) else 5
        assert offset.total_seconds() == expected * 3600
        # keys: the account, or the period / effective date / office code
        key_of = {
            "TariffPublished": str(getattr(payload, "effective_from", "")),
            "VatRateChanged": str(getattr(payload, "effective_from", "")),
            "PeriodClosed": getattr(payload, "period", ""),
            "DistrictOfficeUpdated": getattr(payload, "code", ""),
        }
        assert m.key == key_of.get(envelope.event_type, getattr(payload, "account_no", None))


def test_event_ids_are_uuid5_of_stable_keys_and_unique(world) -> None:  # type: ignore[no-untyped-def]
    ids = [m.event_id for m in world.messages]
    assert len(ids) == len(set(ids))
    opened = next(m for m in world.messages if m.event_type == "AccountOpened")
    assert opened.event_id == str(event_id(f"account-opened:{opened.key}"))
    assert event_id("x").version == 5 and str(NAMESPACE) == "6f1f8a8e-3b5e-5c1e-9a43-1b0e2f7c4d21"
    payments = [
        json.loads(m.value)["payload"]["payment_id"]
        for m in world.messages
        if m.event_type == "PaymentReported"
    ]
    assert len(payments) == len(set(payments))


def test_messages_come_in_a_realistic_order(world) -> None:  # type: ignore[no-untyped-def]
    times = [m.at for m in world.messages]
    assert times == sorted(times)
    first_types = [m.event_type for m in world.messages[: len(ref.DISTRICT_OFFICES) + 4]]
    assert Counter(first_types) == Counter(
        {"DistrictOfficeUpdated": 8, "TariffPublished": 2, "VatRateChanged": 2}
    )
    opened_at: dict[str, datetime] = {}
    for m in world.messages:
        p = json.loads(m.value)["payload"]
        if m.event_type == "AccountOpened":
            opened_at[m.key] = m.at
        elif "account_no" in p:
            assert p["account_no"] in opened_at, f"{m.event_type} before its account was opened"
    # a period is closed once, on the 1st of the next month, after every reading dated in it
    closes = {
        json.loads(m.value)["payload"]["period"]: m.at
        for m in world.messages
        if m.event_type == "PeriodClosed"
    }
    assert len(closes) == len([m for m in world.messages if m.event_type == "PeriodClosed"])
    for m in world.messages:
        if m.event_type == "GridReadingTaken":
            period = json.loads(m.value)["payload"]["reading_date"][:7]
            assert m.at < closes[period]
    last_closed = max(closes)
    assert Month.parse(last_closed) < Month.of(TODAY)


def test_the_world_looks_like_almaty(world) -> None:  # type: ignore[no-untyped-def]
    opened = [parse(m.topic, m.value)[2] for m in world.messages if m.event_type == "AccountOpened"]  # type: ignore[index]
    assert len(opened) == 43
    streets = {s for o in ref.DISTRICT_OFFICES for s in o.streets}
    for a in opened:
        assert a.address.startswith("г. Алматы, ") and any(s in a.address for s in streets)
        assert 0 <= a.residents <= 6 and a.meter.digits in (5, 6)
        assert len(a.payer_name.split()) in (2, 3)
        assert a.district_office_code in {o.code for o in ref.DISTRICT_OFFICES}
        assert not a.living_alone or a.residents == 1
    assert {a.tariff_option for a in opened} == {"flat", "tiered"}
    assert any(a.electric_stove for a in opened) and any(not a.electric_stove for a in opened)
    banks = {
        json.loads(m.value)["payload"]["bank"] for m in world.messages if m.event_type == "PaymentReported"
    }
    assert {"Kaspi Bank", "Halyk Bank"} <= banks and banks <= {b for b, _, _ in ref.BANKS}
    types = Counter(m.event_type for m in world.messages)
    assert types["GridReadingTaken"] > 0.8 * 43 * 12 * 0.9
    for kind in ("CorrectionIssued", "PaymentCancelled", "MeterReplaced", "ResidentsChanged"):
        assert types[kind] >= 1, kind
    offices = [parse(m.topic, m.value)[2] for m in world.messages if m.event_type == "DistrictOfficeUpdated"]  # type: ignore[index]
    assert {o.name for o in offices} == {
        f"{d} РОЭС"
        for d in (
            "Алмалинский",
            "Ауэзовский",
            "Бостандыкский",
            "Жетысуский",
            "Медеуский",
            "Наурызбайский",
            "Турксибский",
            "Алатауский",
        )
    }


def test_tariffs_are_rating_md_section_3_with_the_section_2_norms(world) -> None:  # type: ignore[no-untyped-def]
    tariffs = [parse(m.topic, m.value)[2] for m in world.messages if m.event_type == "TariffPublished"]  # type: ignore[index]
    rows = {(t.effective_from, t.flat, t.tier1, t.tier2, t.tier3) for t in tariffs}
    assert rows == {
        (date(2018, 3, 1), Decimal("16.36"), Decimal("14.87"), Decimal("19.63"), Decimal("24.54")),
        (date(2025, 7, 1), Decimal("31.85"), Decimal("28.95"), Decimal("38.22"), Decimal("47.77")),
    }
    norms = {(n.electric_stove, n.living_alone, n.tier1_kwh, n.tier2_kwh) for n in tariffs[0].norms}
    assert norms == {
        (False, False, 90, 160),
        (True, False, 115, 190),
        (False, True, 115, 160),
        (True, True, 140, 190),
    }
    vat = {
        (v.effective_from, v.rate)
        for m in world.messages
        if m.event_type == "VatRateChanged"
        for v in [_payload(m)]
    }
    assert vat == {(date(2009, 1, 1), Decimal("0.12")), (date(2026, 1, 1), Decimal("0.16"))}


def test_readings_follow_the_meter_including_rollover_and_replacement(world) -> None:  # type: ignore[no-untyped-def]
    last: dict[str, tuple[str, date, Decimal, int]] = {}  # account → serial, date, value, digits
    rolled = replaced = 0
    for m in world.messages:
        p = parse(m.topic, m.value)[2]  # type: ignore[index]
        if isinstance(p, bo.AccountOpened):
            last[p.account_no] = (
                p.meter.serial,
                p.meter.installed_on,
                p.meter.initial_reading,
                p.meter.digits,
            )
        elif isinstance(p, bo.MeterReplaced):
            serial, day, value, digits = last[p.account_no]
            assert p.old_serial == serial and p.replaced_on > day
            assert p.final_reading >= value or (value >= Decimal("0.9") * 10**digits)
            last[p.account_no] = (p.new_serial, p.replaced_on, p.initial_reading, p.digits)
            replaced += 1
        elif isinstance(p, bo.GridReadingTaken):
            serial, day, value, digits = last[p.account_no]
            assert p.meter_serial == serial and p.reading_date > day
            assert p.value < 10**digits
            if p.value < value:  # only a rollover (RATING.md §4.2)
                assert value >= Decimal("0.9") * 10**digits and p.value < Decimal("0.1") * 10**digits
                rolled += 1
            last[p.account_no] = (serial, p.reading_date, p.value, digits)
    assert replaced >= 1 and rolled >= 1  # the demo's mother's meter rolls over


def test_the_simulator_ledger_adds_up(world) -> None:  # type: ignore[no-untyped-def]
    ledger = SimLedger().record_all(world.messages)
    document = ledger.to_json()
    assert document["malformed"] == {} and document["duplicates"] == {}
    total_cancelled = 0
    for no, a in document["accounts"].items():
        live = [p for p in a["payments"] if not p["cancelled"]]
        assert Decimal(a["totals"]["paid"]) == sum((Decimal(p["amount"]) for p in live), Decimal("0.00"))
        assert Decimal(a["totals"]["paid"]) == sum(
            map(Decimal, a["totals"]["paid_by_month"].values()), Decimal(0)
        )
        assert Decimal(a["totals"]["corrections"]) == sum(
            map(Decimal, a["totals"]["corrections_by_period"].values()), Decimal(0)
        )
        assert all(
            Decimal(p["amount"]) > 0
            and Decimal(p["amount"]) == Decimal(p["amount"]).quantize(Decimal("0.01"))
            for p in a["payments"]
        )
        total_cancelled += a["totals"]["cancelled"]
        if live:
            last = max(live, key=lambda p: p["paid_on"])
            assert a["proof"] == {
                "account_no": no,
                "last_payment_month": last["paid_on"][:7],
                "last_payment_amount": last["amount"],
            }
            days = [p["paid_on"] for p in a["payments"]]
            assert len(days) == len(set(days)), (
                "one payment a day per account: the last payment is unambiguous"
            )
    assert total_cancelled == sum(1 for m in world.messages if m.event_type == "PaymentCancelled")
    # a cancelled payment is re-paid: the amount reappears on a later day
    for a in document["accounts"].values():
        for p in a["payments"]:
            if p["cancelled"]:
                assert any(
                    q["amount"] == p["amount"] and q["paid_on"] > p["paid_on"] and not q["cancelled"]
                    for q in a["payments"]
                )


def test_ledger_payments_are_one_per_payment_id_and_cancellation_order_does_not_matter(world) -> None:  # type: ignore[no-untyped-def]
    forward = SimLedger().record_all(world.messages).to_json()
    backward = SimLedger().record_all(list(reversed(world.messages))).to_json()
    for no in forward["accounts"]:
        assert forward["accounts"][no]["totals"] == backward["accounts"][no]["totals"]
        assert forward["accounts"][no]["proof"] == backward["accounts"][no]["proof"]


def test_the_demo_accounts_have_24_months_and_a_proof(world) -> None:  # type: ignore[no-untyped-def]
    ledger = SimLedger().record_all(world.messages)
    assert set(world.demo_accounts) == set(DEMO_ACCOUNTS)
    assert [world.households[n].demo for n in DEMO_ACCOUNTS] == ["linked", "linked", "manual"]
    assert set(DEMO_LINKED) | {DEMO_MANUAL} == set(DEMO_ACCOUNTS)
    last_month = str(Month.of(TODAY).plus(-1))
    for no in DEMO_ACCOUNTS:
        proof = ledger.proof(no)
        assert proof is not None and proof["last_payment_month"] == last_month
        months = {
            p.paid_on.strftime("%Y-%m") for p in ledger.accounts[no].live_payments(ledger.cancelled[no])
        }
        assert len(months) == 24  # a payment every month of the 24
        assert len(ledger.accounts[no].readings) >= 22
    main = ledger.to_json()["accounts"][DEMO_ACCOUNTS[0]]
    assert main["payer_name"] == "Нурланова Айгерим Маратовна"
    assert main["meter_replacements"] == 1 and main["totals"]["cancelled"] == 1 and main["corrections"]


def test_almaty_offset_rule() -> None:
    assert almaty(date(2024, 2, 29)).isoformat() == "2024-02-29T09:00:00+06:00"
    assert almaty(date(2024, 3, 1)).isoformat() == "2024-03-01T09:00:00+05:00"


def _payload(m: OutMessage) -> Any:
    parsed = parse(m.topic, m.value)
    assert parsed is not None
    return parsed[2]


def test_months() -> None:
    assert str(Month.parse("2025-12").plus(1)) == "2026-01"
    assert Month.parse("2024-02").last == date(2024, 2, 29)
    with pytest.raises(ValueError):
        Month.parse("2025-13")
    with pytest.raises(ValueError):
        Scenario(account_prefix="12a").prefix  # noqa: B018
