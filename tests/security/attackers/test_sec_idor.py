"""IDOR: Alice tries every account-scoped operation on Bob's account, by the API and by the portal's URLs.

The operations come from the OpenAPI document itself (every path with `{account_no}`), so an endpoint
added later is attacked too. Each answer is the same 404 as for an account that doesn't exist (nothing
tells Alice that Bob's exists), and Bob's account is exactly as it was.
"""

from __future__ import annotations

import uuid
from typing import Any

from tests.security.conftest import World
from tests.security.support import Gateway, csrf_of, portal_login, problem, snapshot

BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/api/v1/accounts/{account_no}/requests"): {"category": "other", "text": "Чужая заявка"},
    ("post", "/api/v1/accounts/{account_no}/readings"): {"reading_date": "2026-01-31", "value": "1500.00"},
    ("post", "/api/v1/accounts/{account_no}/calculation"): {"reading_date": "2026-01-31", "reading_value": "1500.00"},
    ("put", "/api/v1/accounts/{account_no}/ebill"): {"email": "attacker@example.kz"},
}  # fmt: skip
PARAMS = {"period": "2026-01", "service_code": "electricity"}


def _account_operations(spec: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted(
        (method, path) for path, ops in spec["paths"].items() if "{account_no}" in path for method in ops
    )


async def test_every_account_operation_on_someone_elses_account_is_a_plain_404(
    gateway: Gateway, world: World
) -> None:
    alice, bob = world.alice, world.bob
    async with gateway.client() as c:
        spec = (await c.get("/api/v1/openapi.json")).json()
        operations = _account_operations(spec)
        assert len(operations) >= 18, operations
        assert all((m, p) in operations for m, p in BODIES)
        bob_before = await snapshot(c, bob)
        nobody = f"{uuid.uuid4().int % 10**12:012d}"
        answers: dict[str, list[Any]] = {}
        for method, template in operations:
            for target in (bob.account, nobody):
                path = template.replace("{account_no}", target)
                for name, value in PARAMS.items():
                    path = path.replace(f"{{{name}}}", value)
                body = BODIES.get((method, template))
                r = await c.request(method.upper(), path, headers=alice.auth, json=body)
                try:
                    answers.setdefault(f"{method} {template}", []).append(
                        problem(r, 404, "account_not_found")
                    )
                except AssertionError as exc:
                    raise AssertionError(f"{method.upper()} {path}: {exc}") from None
        # Bob's account and a number that exists nowhere: byte for byte the same answer, everywhere.
        distinct = {repr(body) for bodies in answers.values() for body in bodies}
        assert len(distinct) == 1, distinct
        # Idempotency-Key can't be used to fish Bob's stored answers either.
        r = await c.post(
            f"/api/v1/accounts/{bob.account}/requests",
            headers={**alice.auth, "Idempotency-Key": uuid.uuid4().hex},
            json=BODIES[("post", "/api/v1/accounts/{account_no}/requests")],
        )
        problem(r, 404, "account_not_found")
        assert await snapshot(c, bob) == bob_before
        # And Alice's own list never shows Bob's account.
        listed = (await c.get("/api/v1/accounts", headers=alice.auth)).json()
        assert bob.account not in {a["account_no"] for a in listed}


async def test_every_portal_page_and_form_of_someone_elses_account_is_a_plain_404(
    gateway: Gateway, world: World
) -> None:
    alice, bob = world.alice, world.bob
    nobody = f"{uuid.uuid4().int % 10**12:012d}"
    pages = [
        "", "/services", "/services/electricity/statement", "/services/electricity/statement.pdf",
        "/calculator", "/payments", "/receipts", "/receipts/2026-01", "/receipts/2026-01?side=back",
        "/receipts/2026-01.pdf", "/readings", "/consumption", "/requests", "/ebill", "/delete",
    ]  # fmt: skip
    forms = {
        "/delete": {"answer": "yes"},
        "/calculator": {"reading_date": "2026-01-31", "reading_value": "1500"},
        "/readings": {"reading_date": "2026-01-31", "value": "1500"},
        "/requests": {"category": "other", "text": "Чужая заявка"},
        "/ebill": {"email": "attacker@example.kz"},
    }
    async with gateway.client() as api:
        bob_before = await snapshot(api, bob)
    async with gateway.client() as c:
        await portal_login(c, alice.email)
        csrf = csrf_of((await c.get("/")).text)
        reference: str | None = None
        for target in (nobody, bob.account):
            for tail in pages:
                r = await c.get(f"/accounts/{target}{tail}")
                assert r.status_code == 404, (target, tail, r.status_code)
                assert r.headers["content-type"].startswith("text/html")
                assert bob.account not in r.text
                reference = reference or r.text
                assert r.text == reference, (target, tail)
            for tail, data in forms.items():
                r = await c.post(f"/accounts/{target}{tail}", data={"csrf_token": csrf, **data})
                assert r.status_code == 404, (target, tail, r.status_code)
                assert r.text == reference, (target, tail)
        # The header's "selected account" never became Bob's: Alice's start page shows only hers.
        start = await c.get("/")
        assert start.status_code == 200 and bob.account not in start.text
        assert alice.account in start.text
    async with gateway.client() as api:
        assert await snapshot(api, bob) == bob_before
