"""Linking with a proof of ownership, its failures and rate limit, unlinking, and authorization."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date
from typing import Any

from tests.support.stack import eventually


async def test_linking_succeeds_is_idempotent_and_unlinking_removes_only_the_callers_link(
    accounts: Any,
) -> None:
    no = accounts.new_account_no()
    # The payments arrive before the account is opened: they are kept, and count once it is.
    await accounts.pay(no, "p-early-1", date(2025, 2, 10), "1000.00")
    await accounts.pay(no, "p-early-2", date(2025, 3, 5), "2500.50")
    await accounts.wait_payments(no, 2)
    await accounts.open_account(no)
    alice, bob = uuid.uuid4(), uuid.uuid4()

    response = await accounts.link(alice, no, "2025-03", "2500.50")
    assert response.status_code == 201
    assert response.json() == {"account_no": no, "message": "Успешно добавлено"}
    # The read model answers at once (written in the appending transaction).
    mine = await accounts.api.get("/internal/v1/accounts", headers=accounts.auth(alice))
    assert mine.json() == [
        {
            "account_no": no,
            "payer_name": "Сейтказиева Айгуль Маратовна",
            "address": "г. Алматы, мкр. Самал-2, д. 58, кв. 14",
            "balance": None,
        }
    ]
    access = await accounts.api.get(f"/internal/v1/access/{alice}/{no}")
    assert (access.status_code, access.json()) == (
        200,
        {"allowed": True, "user_id": str(alice), "account_no": no},
    )
    assert (await accounts.api.get(f"/internal/v1/access/{alice}")).json() == {
        "user_id": str(alice),
        "account_nos": [no],
    }

    # Linking twice: 201 again, no second event. A family member links the same account.
    assert (await accounts.link(alice, no, "2025-03", "2500.5")).status_code == 201
    assert (await accounts.link(bob, no, "2025-03", "2500.50")).status_code == 201
    links = await accounts.events(f"account-links:{no}")
    assert [(t, p["user_id"]) for _, t, p in links] == [
        ("AccountLinked", str(alice)),
        ("AccountLinked", str(bob)),
    ]

    # Unlinking removes only the caller's link.
    assert (
        await accounts.api.delete(f"/internal/v1/accounts/{no}", headers=accounts.auth(alice))
    ).status_code == 204
    assert (
        await accounts.api.get(f"/internal/v1/accounts/{no}", headers=accounts.auth(alice))
    ).status_code == 404
    assert (await accounts.api.get(f"/internal/v1/access/{alice}/{no}")).status_code == 404
    assert (await accounts.api.get("/internal/v1/accounts", headers=accounts.auth(alice))).json() == []
    assert (await accounts.api.get(f"/internal/v1/access/{bob}/{no}")).status_code == 200
    assert (
        await accounts.api.get(f"/internal/v1/accounts/{no}", headers=accounts.auth(bob))
    ).status_code == 200
    assert (
        await accounts.api.delete(f"/internal/v1/accounts/{no}", headers=accounts.auth(alice))
    ).status_code == 404
    links = await accounts.events(f"account-links:{no}")
    assert [t for _, t, _ in links] == ["AccountLinked", "AccountLinked", "AccountUnlinked"]

    # The projection, applying the same events from Kafka, ends where the API left the table.
    async def projected() -> bool:
        rows = await accounts.fetch(
            "SELECT version FROM consumer_stream_versions WHERE consumer = %s AND stream_id = %s",
            (f"accounts-{accounts.harness.instance}.account-links", f"account-links:{no}"),
        )
        return rows == [(3,)]

    await eventually(projected)
    rows = await accounts.fetch(
        "SELECT user_id, linked, version FROM account_links WHERE account_no = %s ORDER BY version", (no,)
    )
    assert rows == [(bob, True, 2), (alice, False, 3)]

    # Linking again after unlinking is a new link.
    assert (await accounts.link(alice, no, "2025-03", "2500.50")).status_code == 201
    assert (await accounts.api.get(f"/internal/v1/access/{alice}/{no}")).status_code == 200


async def test_every_failed_proof_answers_the_same_and_attempts_are_rate_limited(accounts: Any) -> None:
    paid, no_payment, unknown = (
        accounts.new_account_no(),
        accounts.new_account_no(),
        accounts.new_account_no(),
    )
    await accounts.open_account(paid)
    await accounts.open_account(no_payment)
    await accounts.pay(paid, "p-jan", date(2025, 1, 15), "1200.00")
    await accounts.pay(paid, "p-feb", date(2025, 2, 14), "1350.75")
    await accounts.reverse(paid, "p-feb", date(2025, 2, 14), "1350.75")
    await accounts.wait_payments(paid, 2, reversed_count=1)

    mallory = uuid.uuid4()
    failures = {
        "wrong amount": (paid, "2025-01", "1200.01"),
        "wrong month": (paid, "2024-12", "1200.00"),
        "reversed payment": (paid, "2025-02", "1350.75"),
        "unknown account": (unknown, "2025-01", "1200.00"),
        "no payment yet": (no_payment, "2025-01", "1200.00"),
    }
    bodies = {}
    for reason, (no, month, amount) in failures.items():
        response = await accounts.link(mallory, no, month, amount)
        assert response.status_code == 422, reason
        assert response.headers["content-type"] == "application/problem+json"
        bodies[reason] = response.content
    assert len(set(bodies.values())) == 1, bodies
    problem = await accounts.link(mallory, unknown, "2025-01", "1200.00")
    assert problem.status_code == 429  # the sixth attempt
    body = (await accounts.link(uuid.uuid4(), unknown, "2025-01", "1200.00")).json()
    assert body["code"] == "account_link_failed" and body["status"] == 422

    # Mallory is blocked now, even with the right proof, and is told when to retry.
    blocked = await accounts.link(mallory, paid, "2025-01", "1200.00")
    assert blocked.status_code == 429
    assert 1 <= int(blocked.headers["Retry-After"]) <= 900
    assert blocked.json()["code"] == "too_many_attempts"
    # Someone else, with the latest payment that was not reversed, links it.
    carol = uuid.uuid4()
    assert (await accounts.link(carol, paid, "2025-01", "1200.00")).status_code == 201

    # Per account number: five users failing on one account block it for everyone, the owner included.
    target = accounts.new_account_no()
    await accounts.open_account(target)
    await accounts.pay(target, "p-t", date(2025, 3, 3), "800.00")
    await accounts.wait_payments(target, 1)
    for _ in range(5):
        assert (await accounts.link(uuid.uuid4(), target, "2025-03", "1.00")).status_code == 422
    owner = await accounts.link(uuid.uuid4(), target, "2025-03", "800.00")
    assert owner.status_code == 429 and "Retry-After" in owner.headers

    # A successful link clears the user's counter.
    dave = uuid.uuid4()
    for _ in range(4):
        assert (await accounts.link(dave, accounts.new_account_no(), "2025-01", "1.00")).status_code == 422
    assert (await accounts.link(dave, paid, "2025-01", "1200.00")).status_code == 201
    for _ in range(5):
        assert (await accounts.link(dave, accounts.new_account_no(), "2025-01", "1.00")).status_code == 422
    assert (await accounts.link(dave, accounts.new_account_no(), "2025-01", "1.00")).status_code == 429

    # Attempts are counted before the proof is checked: a burst in parallel gets no more guesses.
    eve = uuid.uuid4()
    burst = await asyncio.gather(
        *(accounts.link(eve, accounts.new_account_no(), "2025-01", "1.00") for _ in range(20))
    )
    statuses = sorted(r.status_code for r in burst)
    assert statuses == [422] * 5 + [429] * 15

    # Invalid input is a validation problem, not a proof failure (it reveals nothing about an account).
    invalid = await accounts.api.post(
        "/internal/v1/accounts",
        json={"account_no": "12ab", "last_payment_month": "2025-13", "last_payment_amount": 12.5},
        headers=accounts.auth(uuid.uuid4()),
    )
    assert invalid.status_code == 422
    assert invalid.json()["code"] == "validation_error"
    assert {e["field"] for e in invalid.json()["errors"]} == {
        "account_no",
        "last_payment_month",
        "last_payment_amount",
    }


async def test_another_users_account_is_a_404_on_every_endpoint(accounts: Any) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    no = await accounts.open_paid_and_linked(alice)
    bobs = await accounts.open_paid_and_linked(bob)
    calls = [
        ("GET", f"/internal/v1/accounts/{no}", None),
        ("DELETE", f"/internal/v1/accounts/{no}", None),
        ("GET", f"/internal/v1/accounts/{no}/meters", None),
        ("GET", f"/internal/v1/accounts/{no}/requests", None),
        ("POST", f"/internal/v1/accounts/{no}/requests", {"category": "other", "text": "чужой счёт"}),
        ("POST", f"/internal/v1/accounts/{no}/requests", {"category": "nonsense"}),
    ]
    bodies = set()
    for method, path, body in calls:
        response = await accounts.api.request(method, path, json=body, headers=accounts.auth(bob))
        assert response.status_code == 404, (method, path, response.text)
        bodies.add(response.content)
        # And for an account that doesn't exist at all, or a malformed number: the same answer.
        for other in (accounts.new_account_no(), "not-a-number"):
            response = await accounts.api.request(
                method, path.replace(no, other), json=body, headers=accounts.auth(bob)
            )
            assert response.status_code == 404
            bodies.add(response.content)
    assert len(bodies) == 1
    assert (await accounts.api.get(f"/internal/v1/access/{bob}/{no}")).status_code == 404
    assert [
        a["account_no"]
        for a in (await accounts.api.get("/internal/v1/accounts", headers=accounts.auth(bob))).json()
    ] == [bobs]
    # Alice still has hers; nothing above touched it.
    assert (
        await accounts.api.get(f"/internal/v1/accounts/{no}", headers=accounts.auth(alice))
    ).status_code == 200
    assert await accounts.fetch("SELECT count(*) FROM service_requests WHERE account_no = %s", (no,)) == [
        (0,)
    ]

    # Without a valid token: 401, as a problem.
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        response = await accounts.api.get(f"/internal/v1/accounts/{no}", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "unauthorized"
