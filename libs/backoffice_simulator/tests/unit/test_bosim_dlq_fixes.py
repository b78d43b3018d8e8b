"""The pure parts of the DLQ tooling: fix files, merge and JSON patches, event ids on replay."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from backoffice_simulator.dlq import (
    DeadLetterGroup,
    FixError,
    _with_replay_event_id,
    json_patch,
    load_fixes,
    merge_patch,
    still_invalid,
)
from backoffice_simulator.portal import service_of

GOOD: dict[str, Any] = {
    "event_id": "8604c8d0-92ba-5ad5-8573-4aab9e1881fb",
    "event_type": "PaymentReported",
    "schema_version": 1,
    "occurred_at": "2024-12-07T12:40:51+05:00",
    "producer": "backoffice",
    "payload": {
        "payment_id": "FRT20241207X",
        "account_no": "770100200301",
        "amount": "5949.77",
        "paid_on": "2024-12-07",
        "bank": "ForteBank",
        "service_code": "electricity",
    },
}


def group(document: dict[str, object] | bytes, reasons: list[str]) -> DeadLetterGroup:
    value = document if isinstance(document, bytes) else json.dumps(document).encode()
    return DeadLetterGroup("backoffice.payments.v1", 2, 41, b"770100200301", value, reasons=reasons)


def test_merge_patch_rfc7386() -> None:
    assert merge_patch({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": None, "e": 4}, "f": 5}) == {
        "a": 1,
        "b": {"d": 3, "e": 4},
        "f": 5,
    }
    assert merge_patch({"a": [1]}, {"a": [2]}) == {"a": [2]}


def test_json_patch_rfc6902() -> None:
    doc = {"payload": {"amount": "1.005", "list": [1, 2]}}
    patched = json_patch(
        doc,
        [
            {"op": "test", "path": "/payload/amount", "value": "1.005"},
            {"op": "replace", "path": "/payload/amount", "value": "1.01"},
            {"op": "add", "path": "/payload/list/-", "value": 3},
            {"op": "remove", "path": "/payload/list/0"},
            {"op": "add", "path": "/payload/new~1key", "value": True},
        ],
    )
    assert patched == {"payload": {"amount": "1.01", "list": [2, 3], "new/key": True}}
    assert doc["payload"]["amount"] == "1.005"  # not mutated
    with pytest.raises(FixError):
        json_patch(doc, [{"op": "test", "path": "/payload/amount", "value": "2"}])
    with pytest.raises(FixError):
        json_patch(doc, [{"op": "move", "path": "/payload/amount"}])


def test_fix_file_and_matching(tmp_path: Path) -> None:
    path = tmp_path / "fixes.json"
    path.write_text(
        json.dumps(
            {
                "fixes": [
                    {"source": {"partition": 2, "offset": 41}, "merge": {"payload": {"amount": "5949.78"}}},
                    {
                        "event_id": GOOD["event_id"],
                        "patch": [{"op": "replace", "path": "/payload/bank", "value": "Kaspi Bank"}],
                    },
                    {"source": {"partition": 0, "offset": 1}, "skip": True},
                ]
            }
        )
    )
    by_offset, by_id, skip = load_fixes(path)
    g = group(
        {**GOOD, "payload": {**GOOD["payload"], "amount": "5949.775"}}, ["validation failed: payload.amount"]
    )
    assert by_offset.matches(g) and by_id.matches(g) and not skip.matches(g)
    fixed = json.loads(by_offset.apply(g))
    assert fixed["payload"]["amount"] == "5949.78" and fixed["event_id"] == GOOD["event_id"]
    assert skip.skip
    not_json = group(b'{"event_id": "x",', ["malformed message: bad json"])
    with pytest.raises(FixError):
        by_offset.apply(not_json)


def test_still_invalid_checks_the_contracts() -> None:
    assert still_invalid("backoffice.payments.v1", json.dumps(GOOD).encode()) is None
    bad = {**GOOD, "payload": {**GOOD["payload"], "amount": "-1.00"}}
    assert still_invalid("backoffice.payments.v1", json.dumps(bad).encode())
    assert still_invalid("backoffice.payments.v1", b"{nope") == "not JSON"
    assert still_invalid("backoffice.payments.v1", json.dumps({**GOOD, "event_type": "Nope"}).encode())
    assert still_invalid("some.test.topic", json.dumps({"event_type": "Anything"}).encode()) is None


def test_replay_event_ids() -> None:
    """A parse failure keeps its id; a handler rejection (already in the consumer's inbox) gets a new one."""
    value = json.dumps(GOOD).encode()
    kept, kept_id = _with_replay_event_id(group(GOOD, ["validation failed: x"]), value)
    assert kept == value and kept_id == GOOD["event_id"]
    renewed, new_id = _with_replay_event_id(group(GOOD, ["payment for a closed account"]), value)
    assert new_id != GOOD["event_id"] and json.loads(renewed)["event_id"] == new_id
    _again, same_new = _with_replay_event_id(group(GOOD, ["payment for a closed account"]), value)
    assert same_new == new_id  # deterministic: a second attempt is a duplicate, not a second payment
    explicit = json.dumps({**GOOD, "event_id": "11111111-1111-1111-1111-111111111111"}).encode()
    _, chosen = _with_replay_event_id(group(GOOD, ["rejected"]), explicit)
    assert chosen == "11111111-1111-1111-1111-111111111111"


def test_public_paths_map_to_their_services() -> None:
    assert service_of("/auth/register") == "identity"
    assert service_of("/me/password") == "identity"
    assert service_of("/accounts") == "accounts"
    assert service_of("/accounts/770100200301") == "accounts"
    assert service_of("/accounts/770100200301/requests") == "accounts"
    assert service_of("/accounts/770100200301/services") == "ledger"
    assert service_of("/accounts/770100200301/payments") == "ledger"
    assert service_of("/accounts/770100200301/readings") == "calculator"
    assert service_of("/accounts/770100200301/receipts/2025-01") == "receipts"
    assert service_of("/tariffs/quote") == "calculator"
    assert service_of("/district-offices") == "accounts"
