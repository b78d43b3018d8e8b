"""The public API's own behaviour on the real stack: authentication and the 404 rule, problems in the
caller's language, the cache dropped by events, a service down, the rate limits, idempotent writes,
request ids into the services' events, and the OpenAPI document."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

from gateway import public_api
from tests.browser.backoffice import EventWatch, report_payment

from .conftest import (
    PASSWORD,
    Gateway,
    GatewayFactory,
    almaty_today,
    auth,
    balance_of,
    fake_ip,
    link,
    new_email,
    register_and_login,
    seed_account,
)

PROBLEM = "application/problem+json"


def problem(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers
    body: dict[str, Any] = r.json()
    assert body["code"] == code, body
    assert {"type", "title", "status", "detail", "errors"} <= body.keys()
    return body


async def test_credentials_and_the_404_rule_with_problems_in_three_languages(
    gateway: Gateway, kafka_bootstrap: str
) -> None:
    async with gateway.client() as c:
        titles = {}
        for lang in ("ru", "kk", "en"):
            r = await c.get("/api/v1/accounts", headers={"Accept-Language": lang})
            titles[lang] = problem(r, 401, "not_authenticated")["title"]
            assert r.headers["content-language"] == lang
        assert titles["ru"] == "Требуется вход"
        assert titles["en"] == "Sign-in required"
        assert len(set(titles.values())) == 3, titles
        problem(
            await c.get("/api/v1/me", headers={"Authorization": "Bearer not.a.token"}), 401, "invalid_token"
        )

        owner = await register_and_login(c)
        stranger = await register_and_login(c)
        account = await seed_account(kafka_bootstrap)
        await link(c, owner, account)
        me = (await c.get("/api/v1/me", headers=auth(owner))).json()
        assert me["email"] == owner["email"]

        # Someone else's account, a number that exists nowhere and a malformed one: the same 404.
        unknown = "1" + uuid.uuid4().int.__str__()[:11]
        bodies = []
        for no in (account.account_no, unknown, "not-a-number"):
            for tail in ("", "/payments", "/services", "/readings", "/receipts", "/requests"):
                r = await c.get(f"/api/v1/accounts/{no}{tail}", headers=auth(stranger))
                bodies.append(problem(r, 404, "account_not_found"))
        assert all(b == bodies[0] for b in bodies)
        r = await c.get(f"/api/v1/accounts/{account.account_no}", headers=auth(owner))
        assert r.status_code == 200, r.text
        assert r.json()["payer_name"] == account.household.payer_name

        # The gateway's own validation, in English, field by field.
        r = await c.post(
            "/api/v1/accounts", headers={**auth(owner), "Accept-Language": "en"}, json={"account_no": "12"}
        )
        body = problem(r, 422, "validation_error")
        assert body["title"] == "Invalid request data"
        fields = {e["field"]: e["message"] for e in body["errors"]}
        assert set(fields) == {"account_no", "last_payment_month", "last_payment_amount"}
        assert fields["last_payment_month"] == "Required field"

        # A service's problem: Russian kept as the service wrote it, Kazakh and English by its code.
        wrong = {"email": owner["email"], "password": "совсем-не-тот-пароль"}
        ru = problem(await c.post("/api/v1/auth/login", json=wrong), 401, "invalid_credentials")
        kk = problem(
            await c.post("/api/v1/auth/login", json=wrong, headers={"Accept-Language": "kk"}),
            401,
            "invalid_credentials",
        )
        en = problem(
            await c.post("/api/v1/auth/login", json=wrong, headers={"Accept-Language": "en-US,en;q=0.9"}),
            401,
            "invalid_credentials",
        )
        assert ru["detail"] == "Неверный e-mail или пароль"
        assert en["detail"] == "Wrong e-mail or password"
        assert kk["detail"] not in (ru["detail"], en["detail"])


async def test_a_payment_event_drops_the_cached_balance(gateway: Gateway, kafka_bootstrap: str) -> None:
    invalidator = gateway.app.state.invalidator
    await asyncio.wait_for(invalidator.ready.wait(), timeout=60)
    cache = gateway.app.state.parts.cache
    async with gateway.client() as c:
        tokens = await register_and_login(c)
        account = await seed_account(kafka_bootstrap, amount="4250.00")
        await link(c, tokens, account)
        user_id = (await c.get("/api/v1/me", headers=auth(tokens))).json()["user_id"]

        # The ledger learns of the link through Kafka; until then the balance is unknown. Just after an
        # event (the link's) reads bypass the cache for a few seconds; then the list is cached.
        cached = None
        for _ in range(120):
            before = await balance_of(c, tokens, account.account_no)
            cached = await cache.peek(cache.accounts_key(user_id))
            if before is not None and cached is not None:
                break
            await asyncio.sleep(0.5)
        assert before is not None
        assert cached is not None, "the composed list is cached"
        assert cached["accounts"][0]["balance"] == before
        assert await balance_of(c, tokens, account.account_no) == before  # served from the cache

        async with EventWatch(kafka_bootstrap, ["ledger.events.v1"]) as watch:
            await report_payment(kafka_bootstrap, account.account_no, "1000.00", almaty_today())
            await watch.wait_for("PaymentReceived", account_no=account.account_no)

        expected = f"{Decimal(before) - Decimal('1000.00'):.2f}"
        # The cache lives 300 s; seeing the new balance well before proves the event dropped it.
        for _ in range(100):
            if await balance_of(c, tokens, account.account_no) == expected:
                break
            await asyncio.sleep(0.1)
        assert await balance_of(c, tokens, account.account_no) == expected
        assert invalidator.applied > 0


async def test_a_service_down_fails_only_the_calls_that_need_it(
    make_gateway: GatewayFactory, kafka_bootstrap: str
) -> None:
    # The ledger "down": nothing listens on its address (connection refused), as when it crashed.
    async with make_gateway(ledger_url="http://127.0.0.1:9", upstream_timeout_s=1.0) as gw, gw.client() as c:
        tokens = await register_and_login(c)
        account = await seed_account(kafka_bootstrap)
        await link(c, tokens, account)

        r = await c.get("/api/v1/accounts", headers=auth(tokens))
        assert r.status_code == 200, r.text
        assert r.json()[0]["account_no"] == account.account_no
        assert r.json()[0]["balance"] is None
        assert "balances unavailable" in r.headers["warning"]

        r = await c.get(f"/api/v1/accounts/{account.account_no}/payments", headers=auth(tokens))
        body = problem(r, 503, "service_unavailable")
        assert "Начисления и платежи" in body["detail"]
        assert r.headers["retry-after"] == "5"
        r = await c.get(
            f"/api/v1/accounts/{account.account_no}/payments",
            headers={**auth(tokens), "Accept-Language": "en"},
        )
        assert problem(r, 503, "service_unavailable")["title"] == "Service temporarily unavailable"

        # What doesn't need the ledger still works.
        r = await c.get(f"/api/v1/accounts/{account.account_no}", headers=auth(tokens))
        assert r.status_code == 200
        r = await c.get(f"/api/v1/accounts/{account.account_no}/readings", headers=auth(tokens))
        assert r.status_code == 200


async def test_failed_logins_and_link_attempts_are_limited_per_client_address(
    make_gateway: GatewayFactory, kafka_bootstrap: str
) -> None:
    async with make_gateway(login_max_failures=3, link_max_failures=2) as gw:
        attacker, neighbour = fake_ip(), fake_ip()
        async with gw.client(ip=attacker) as c, gw.client(ip=neighbour) as other:
            email = new_email()
            await register_and_login(other, email)
            for _ in range(3):
                r = await c.post("/api/v1/auth/login", json={"email": email, "password": "неверный-пароль-1"})
                problem(r, 401, "invalid_credentials")
            r = await c.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
            body = problem(r, 429, "too_many_requests")
            assert int(r.headers["retry-after"]) > 0
            assert "мин" in body["detail"]
            # Another address is not affected.
            assert (
                await other.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
            ).status_code == 200

            tokens = await register_and_login(other)
            account = await seed_account(kafka_bootstrap)
            wrong = {"account_no": account.account_no, "last_payment_month": account.payment_month}
            for amount in ("1.00", "2.00"):
                r = await c.post(
                    "/api/v1/accounts", headers=auth(tokens), json={**wrong, "last_payment_amount": amount}
                )
                problem(r, 422, "account_link_failed")
            r = await c.post(
                "/api/v1/accounts",
                headers=auth(tokens),
                json={**wrong, "last_payment_amount": account.payment_amount},
            )
            problem(r, 429, "too_many_requests")
            assert int(r.headers["retry-after"]) > 0


async def test_idempotency_key_replays_the_first_answer(gateway: Gateway, kafka_bootstrap: str) -> None:
    async with gateway.client() as c:
        tokens = await register_and_login(c)
        account = await seed_account(kafka_bootstrap)
        await link(c, tokens, account)
        path = f"/api/v1/accounts/{account.account_no}/requests"
        key = uuid.uuid4().hex
        body = {"category": "recalculation", "text": "Прошу пересчитать начисление за прошлый месяц."}
        headers = {**auth(tokens), "Idempotency-Key": key}

        first = await c.post(path, headers=headers, json=body)
        assert first.status_code == 201, first.text
        again = await c.post(path, headers=headers, json=body)
        assert again.status_code == 201
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        listed = (await c.get(path, headers=auth(tokens))).json()
        assert [r["request_id"] for r in listed].count(first.json()["request_id"]) == 1
        assert len(listed) == 1

        problem(
            await c.post(path, headers=headers, json={**body, "text": "Другой текст"}),
            422,
            "idempotency_key_reused",
        )
        fresh = await c.post(path, headers={**auth(tokens), "Idempotency-Key": uuid.uuid4().hex}, json=body)
        assert fresh.status_code == 201 and fresh.json()["request_id"] != first.json()["request_id"]

        # The key is the caller's own: another user sending the same key is not served the stored answer.
        other = await register_and_login(c)
        r = await c.post(path, headers={**auth(other), "Idempotency-Key": key}, json=body)
        problem(r, 404, "account_not_found")


async def test_the_request_id_reaches_the_services_events(gateway: Gateway, kafka_bootstrap: str) -> None:
    async with gateway.client() as c:
        tokens = await register_and_login(c)
        account = await seed_account(kafka_bootstrap)
        await link(c, tokens, account)
        request_id = uuid.uuid4().hex
        async with EventWatch(kafka_bootstrap, ["accounts.events.v1"]) as watch:
            r = await c.post(
                f"/api/v1/accounts/{account.account_no}/requests",
                headers={**auth(tokens), "X-Request-ID": request_id},
                json={"category": "other", "text": "Проверка идентификатора запроса."},
            )
            assert r.status_code == 201, r.text
            assert r.headers["x-request-id"] == request_id
            event = await watch.wait_for("ServiceRequestSubmitted", request_id=r.json()["request_id"])
        assert event["correlation_id"] == request_id


async def test_the_openapi_document_covers_the_contract_with_examples(gateway: Gateway) -> None:
    contract = {
        ("post", "/auth/register"), ("post", "/auth/login"), ("post", "/auth/refresh"), ("post", "/auth/logout"),
        ("post", "/auth/password-reset"), ("post", "/auth/password-reset/confirm"), ("get", "/me"),
        ("patch", "/me"), ("post", "/me/password"), ("post", "/me/email"), ("post", "/me/email/confirm"),
        ("get", "/accounts"), ("post", "/accounts"), ("delete", "/accounts/{account_no}"),
        ("get", "/accounts/{account_no}"), ("get", "/accounts/{account_no}/requests"),
        ("post", "/accounts/{account_no}/requests"), ("get", "/accounts/{account_no}/services"),
        ("get", "/accounts/{account_no}/services/{service_code}/statement"),
        ("get", "/accounts/{account_no}/payments"), ("get", "/accounts/{account_no}/readings"),
        ("post", "/accounts/{account_no}/readings"), ("post", "/accounts/{account_no}/calculation"),
        ("post", "/tariffs/quote"), ("get", "/tariffs"), ("get", "/accounts/{account_no}/receipts"),
        ("get", "/accounts/{account_no}/receipts/{period}"), ("get", "/accounts/{account_no}/receipts/{period}.pdf"),
        ("put", "/accounts/{account_no}/ebill"), ("delete", "/accounts/{account_no}/ebill"),
        ("get", "/contact-center"), ("get", "/district-offices"),
    }  # fmt: skip
    async with gateway.client() as c:
        r = await c.get("/api/v1/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    documented = {
        (method, path.removeprefix("/api/v1")) for path, ops in spec["paths"].items() for method in ops
    }
    assert contract <= documented, contract - documented
    routes = [
        route
        for sub in (
            public_api.identity,
            public_api.accounts,
            public_api.money,
            public_api.bills,
            public_api.reference,
        )
        for route in sub.routes
    ]
    assert len(documented) == len(routes)  # every route of the public API is documented
    schemas = spec["components"]["schemas"]
    assert "Problem" in schemas

    def has_examples(node: Any, depth: int = 0) -> bool:
        if depth > 12:
            return False
        if isinstance(node, dict):
            if "examples" in node or "example" in node:
                return True
            ref = node.get("$ref")
            if isinstance(ref, str):
                return has_examples(schemas[ref.rsplit("/", 1)[-1]], depth + 1)
            return any(has_examples(v, depth + 1) for v in node.values())
        if isinstance(node, list):
            return any(has_examples(v, depth + 1) for v in node)
        return False

    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if "requestBody" in op:
                assert has_examples(op["requestBody"]), (method, path, "request")
            ok = next(v for k, v in op["responses"].items() if k.startswith("2"))
            if ok.get("content", {}).get("application/json", {}).get("schema"):
                assert has_examples(ok["content"]["application/json"]["schema"]), (method, path, "response")
            for status, response in op["responses"].items():
                if status.startswith(("4", "5")) and "content" in response:
                    assert "application/problem+json" in response["content"], (method, path, status)
