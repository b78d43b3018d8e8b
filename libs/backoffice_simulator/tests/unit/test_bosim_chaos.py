"""Chaos: exact counts, every malformed kind really malformed, and the ledger unchanged by it all."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from backoffice_simulator.chaos import MALFORMED_KINDS, Chaos, ChaosConfig, malformed_message
from backoffice_simulator.generator import Scenario, generate
from backoffice_simulator.ledger import SimLedger, is_valid
from backoffice_simulator.wire import OutMessage

TODAY = date(2026, 11, 26)


@pytest.fixture(scope="module")
def messages() -> list[OutMessage]:
    return generate(Scenario(seed=3, accounts=25, months=8, today=TODAY)).messages


def test_chaos_counts_exactly_what_it_sent(messages: list[OutMessage]) -> None:
    chaos = Chaos(ChaosConfig(duplicates=0.4, disorder=0.6, malformed=0.25, seed=9))
    sent = chaos.apply(messages)
    report = chaos.report
    kinds = Counter(m.kind.split(":")[0] for m in sent)
    assert kinds["valid"] == len(messages)
    assert kinds["duplicate"] == sum(report.duplicates.values())
    assert kinds["resend"] == report.payment_resends > 0
    per_topic = Counter(m.topic for m in sent if m.kind.startswith("malformed"))
    assert dict(per_topic) == report.malformed_per_topic()
    by_kind = Counter(
        (m.topic, m.kind.removeprefix("malformed:")) for m in sent if m.kind.startswith("malformed")
    )
    assert by_kind == Counter({(t, k): n for t, ks in report.malformed.items() for k, n in ks.items()})
    # every kind appears, and each malformed record really fails the contracts; no valid record does
    assert {k for ks in report.malformed.values() for k in ks} == set(MALFORMED_KINDS)
    for m in sent:
        assert is_valid(m.topic, m.value) == (not m.kind.startswith("malformed")), m.kind
    # the ledger, folded from what was sent, counts the same malformed records per topic
    ledger = SimLedger().record_all(sent)
    assert dict(ledger.malformed) == report.malformed_per_topic()
    assert sum(ledger.duplicates.values()) == sum(report.duplicates.values())
    assert report.displaced > 0


def test_totals_are_the_same_whatever_the_chaos(messages: list[OutMessage]) -> None:
    clean = SimLedger().record_all(messages).to_json()
    for seed in range(4):
        chaos = Chaos(
            ChaosConfig(duplicates=0.5, disorder=0.9, malformed=0.1, window=80, scope="any", seed=seed)
        )
        noisy = SimLedger().record_all(chaos.apply(messages)).to_json()
        assert {n: (a["totals"], a["proof"], a["opening_balance"]) for n, a in noisy["accounts"].items()} == {
            n: (a["totals"], a["proof"], a["opening_balance"]) for n, a in clean["accounts"].items()
        }
        assert noisy["periods_closed"] == clean["periods_closed"]


def test_cross_topic_disorder_keeps_each_keys_order(messages: list[OutMessage]) -> None:
    chaos = Chaos(ChaosConfig(disorder=1.0, window=200, seed=1))
    shuffled = chaos.apply(messages)
    assert shuffled != messages and sorted(m.event_id for m in shuffled) == sorted(
        m.event_id for m in messages
    )

    def per_key(items: list[OutMessage]) -> dict[tuple[str, str], list[str]]:
        order: dict[tuple[str, str], list[str]] = {}
        for m in items:
            order.setdefault((m.topic, m.key), []).append(m.event_id)
        return order

    assert per_key(shuffled) == per_key(messages)
    # ...but across topics things now come early or late: e.g. a payment before its account is opened
    opened: set[str] = set()
    early = 0
    for m in shuffled:
        if m.event_type == "AccountOpened":
            opened.add(m.key)
        elif (
            m.topic != "backoffice.accounts.v1"
            and m.key not in opened
            and m.key.isdigit()
            and len(m.key) == 12
        ):
            early += 1
    assert early > 0


def test_payment_resends_keep_the_payment_id_with_a_new_event_id(messages: list[OutMessage]) -> None:
    chaos = Chaos(ChaosConfig(duplicates=1.0, seed=2))
    sent = chaos.apply(messages)
    resends = [m for m in sent if m.kind == "resend"]
    originals = {
        json.loads(m.value)["payload"]["payment_id"]: m for m in messages if m.event_type == "PaymentReported"
    }
    assert len(resends) == len(originals)
    for r in resends:
        doc = json.loads(r.value)
        original = originals[doc["payload"]["payment_id"]]
        assert (
            doc["event_id"] != original.event_id and doc["payload"] == json.loads(original.value)["payload"]
        )


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_each_malformed_kind(kind: str, messages: list[OutMessage]) -> None:
    payment = next(m for m in messages if m.event_type == "PaymentReported")
    bad = malformed_message(payment.topic, payment.key, kind, payment)
    assert bad.kind == f"malformed:{kind}" and not is_valid(bad.topic, bad.value)
    if kind == "bad_json":
        with pytest.raises(ValueError):
            json.loads(bad.value)
        return
    doc = json.loads(bad.value)
    expected: Callable[[dict[str, Any]], bool] = {
        "amount_three_decimals": lambda d: (
            d["payload"]["amount"].count(".") == 1 and len(d["payload"]["amount"].split(".")[1]) == 3
        ),
        "amount_negative": lambda d: d["payload"]["amount"].startswith("-"),
        "amount_zero": lambda d: d["payload"]["amount"] == "0.00",
        "account_with_letters": lambda d: not d["payload"]["account_no"].isdigit(),
        "unknown_event_type": lambda d: d["event_type"] != "PaymentReported",
        "wrong_schema_version": lambda d: d["schema_version"] == 2,
        "missing_field": lambda d: "amount" not in d["payload"],
        "missing_envelope_field": lambda d: "occurred_at" not in d,
    }[kind]
    assert expected(doc)
