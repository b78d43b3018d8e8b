"""Injection of every kind: stored XSS through the name, the request text, and what the back-office sends
(payer, address, district office, a request's comment) as the portal shows them; SQL in every field;
header and redirect injection; path traversal in the static and document routes; and what the gateway
must never expose (metrics, readiness, the services' internal APIs).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import httpx
import orjson

from contracts import backoffice as bo
from tests.browser.backoffice import EventWatch, district_office
from tests.security.conftest import World
from tests.security.support import (
    BASE_URL,
    Gateway,
    csrf_of,
    fake_ip,
    link,
    new_customer,
    portal_login,
    problem,
    seed_account,
    snapshot,
)
from tests.support.stack import produce

XSS = [
    "<script>alert('xss')</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg/onload=alert(1)>",
    "javascript:alert(1)",
    "</textarea><script>alert(2)</script>",
    "{{7*7}}{% raw %}",
    "<iframe src=//evil.example>",
]
SQL = [
    "' OR '1'='1",
    "'; DROP TABLE users; --",
    '" OR 1=1 --',
    "1; SELECT pg_sleep(3)--",
    "' UNION SELECT password_hash FROM credentials --",
    "$$; DELETE FROM events; $$",
    "\\'; --",
]
# A live tag of the payloads (escaped text, `&lt;img … onerror=…`, is harmless and expected).
RAW_MARKUP = re.compile(r"<(script|img|svg|iframe)\b[^>]*>?[^<]*(alert|evil)", re.I)


def _no_raw_markup(html: str, where: str) -> None:
    found = RAW_MARKUP.search(html)
    assert not found, f"{where}: unescaped markup {found.group(0)!r}"


async def _xss_household(kafka_bootstrap: str) -> Any:
    office = f"X{uuid.uuid4().hex[:8].upper()}"
    await district_office(
        kafka_bootstrap, office, "<script>alert('office')</script>РОЭС", '"><img src=x onerror=alert(1)>',
        "+7 <b>727</b>", "<svg/onload=alert(1)>",
    )  # fmt: skip
    return await seed_account(
        kafka_bootstrap,
        payer_name="<script>alert('payer')</script>Иванов",
        address='"><img src=x onerror=alert(1)> ул. Абая',
        district_office_code=office,
    )


async def test_stored_xss_is_shown_as_text_everywhere(gateway: Gateway, kafka_bootstrap: str) -> None:
    seeded = await _xss_household(kafka_bootstrap)
    async with gateway.client() as c:
        dave = await new_customer(c, "Д'Артаньян Шарль")
        await link(c, dave, seeded)
        no = seeded.account_no
        # The name: identity allows letters, spaces, hyphens and apostrophes only.
        for name in XSS:
            r = await c.patch("/api/v1/me", headers=dave.auth, json={"full_name": name})
            problem(r, 422)
        # The request text: stored as given (plain text), shown as text.
        request_ids = []
        for text in XSS:
            r = await c.post(
                f"/api/v1/accounts/{no}/requests", headers=dave.auth, json={"category": "other", "text": text}
            )
            assert r.status_code == 201, r.text
            request_ids.append(r.json()["request_id"])
        listed = (await c.get(f"/api/v1/accounts/{no}/requests", headers=dave.auth)).json()
        assert {r["text"] for r in listed} == set(XSS)
        # The back-office answers a request with a hostile comment.
        async with EventWatch(kafka_bootstrap, ["accounts.events.v1"]) as watch:
            payload = bo.ServiceRequestProgressed(
                request_id=request_ids[0],
                account_no=no,
                status="in_progress",
                comment="<script>alert('comment')</script>",
            ).model_dump(mode="json")
            envelope = {"event_id": str(uuid.uuid4()), "event_type": "ServiceRequestProgressed", "schema_version": 1,
                        "occurred_at": "2026-01-15T09:00:00+05:00", "producer": "backoffice", "payload": payload}  # fmt: skip
            await produce(kafka_bootstrap, bo.REQUESTS, [(no.encode(), orjson.dumps(envelope))])
            await watch.wait_for("ServiceRequestStatusChanged", request_id=request_ids[0], timeout_s=120)
        # The office reached the account's details through accounts' projection.
        for _ in range(120):
            info = (await c.get(f"/api/v1/accounts/{no}", headers=dave.auth)).json()
            if (info.get("district_office") or {}).get("name"):
                break
            await asyncio.sleep(0.5)
        assert "<script>" in info["district_office"]["name"] and "<script>" in info["payer_name"]

    async with gateway.client() as portal:
        await portal_login(portal, dave.email)
        pages = [
            "/",
            f"/accounts/{no}",
            f"/accounts/{no}/requests",
            f"/accounts/{no}/payments",
            f"/accounts/{no}/ebill",
            "/profile",
            "/sitemap",
        ]
        for path in pages:
            r = await portal.get(path)
            assert r.status_code == 200, (path, r.status_code)
            _no_raw_markup(r.text, path)
            csp = r.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
        requests_page = (await portal.get(f"/accounts/{no}/requests")).text
        assert "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;" in requests_page
        assert "&lt;script&gt;alert(&#39;comment&#39;)&lt;/script&gt;" in requests_page
        info_page = (await portal.get(f"/accounts/{no}")).text
        assert "&lt;script&gt;alert(&#39;payer&#39;)&lt;/script&gt;Иванов" in info_page
        assert "&lt;script&gt;alert(&#39;office&#39;)&lt;/script&gt;РОЭС" in info_page
        # The statement (rendered by the ledger, shown and printed through the gateway) shows text too.
        for path in (f"/accounts/{no}/services/electricity/statement", f"/accounts/{no}/services"):
            r = await portal.get(path)
            assert r.status_code == 200, (path, r.status_code)
            _no_raw_markup(r.text, path)
        # The apostrophe of a real name can't break out of an attribute either.
        profile = (await portal.get("/profile")).text
        assert 'value="Д&#39;Артаньян Шарль"' in profile or 'value="Д\'Артаньян Шарль"' in profile


async def test_sql_in_every_field_is_data(gateway: Gateway, world: World) -> None:
    alice = world.alice
    async with gateway.client() as c:
        before = await snapshot(c, alice)
        for s in SQL:
            for method, path, body in (
                ("POST", "/api/v1/auth/login", {"email": s, "password": s}),
                ("POST", "/api/v1/auth/login", {"email": f"{s}@example.kz", "password": s}),
                ("POST", "/api/v1/auth/register", {"email": f"x{s}@example.kz", "password": "Длинный-пароль-1", "full_name": s}),
                ("POST", "/api/v1/auth/password-reset", {"email": s}),
                ("POST", "/api/v1/auth/refresh", {"refresh_token": s}),
                ("POST", "/api/v1/auth/password-reset/confirm", {"token": s, "new_password": "Длинный-пароль-1"}),
                ("PATCH", "/api/v1/me", {"full_name": s}),
                ("POST", "/api/v1/me/email/confirm", {"token": s}),
                ("POST", "/api/v1/accounts", {"account_no": s, "last_payment_month": s, "last_payment_amount": s}),
                ("PUT", f"/api/v1/accounts/{alice.account}/ebill", {"email": s}),
                ("POST", f"/api/v1/accounts/{alice.account}/readings", {"reading_date": s, "value": s}),
                ("POST", "/api/v1/tariffs/quote", {"tariff_option": s, "residents": s, "previous": {"date": s, "value": s}, "current": {"date": s, "value": s}}),
                ("GET", f"/api/v1/accounts/{s}/payments", None),
                ("GET", f"/api/v1/accounts/{alice.account}/payments?from={s}&to={s}", None),
                ("GET", f"/api/v1/accounts/{alice.account}/services?from={s}", None),
                ("GET", f"/api/v1/accounts/{alice.account}/services/{s}/statement", None),
                ("GET", f"/api/v1/accounts/{alice.account}/receipts/{s}", None),
            ):  # fmt: skip
                r = await c.request(
                    method, path, headers={**alice.auth, "X-Forwarded-For": fake_ip()}, json=body
                )
                assert r.status_code < 500, (method, path, body, r.text)
                assert 400 <= r.status_code < 500, (method, path, body, r.status_code, r.text)
                problem(r)
        assert await snapshot(c, alice) == before
        # Where free text is allowed it is stored byte for byte (bound parameters, not string building).
        mallory = await new_customer(c, "Таблицын Роберт")
        await c.post(
            f"/api/v1/accounts/{alice.account}/requests",
            headers=mallory.auth,
            json={"category": "other", "text": SQL[1]},
        )
        for s in SQL:
            r = await c.post(
                f"/api/v1/accounts/{alice.account}/requests",
                headers=alice.auth,
                json={"category": "other", "text": s},
            )
            assert r.status_code == 201, r.text
        texts = [
            q["text"]
            for q in (await c.get(f"/api/v1/accounts/{alice.account}/requests", headers=alice.auth)).json()
        ]
        assert set(SQL) <= set(texts)
        # Everything else is still there (no table was dropped, no row deleted).
        after = await snapshot(c, alice)
        assert after["me"] == before["me"] and after["accounts"] == before["accounts"]
        assert (await c.get("/api/v1/accounts", headers=world.bob.auth)).json()[0][
            "account_no"
        ] == world.bob.account


async def test_no_header_or_redirect_injection(gateway: Gateway, world: World) -> None:
    async with gateway.client() as c:
        # A request id that isn't one of ours is replaced, never echoed.
        for value in ("evil<script>", "x" * 500, "1' OR '1'='1", "../../etc/passwd"):
            r = await c.get("/api/v1/contact-center", headers={"X-Request-ID": value})
            assert r.headers["x-request-id"] != value and re.fullmatch(
                r"[0-9a-f-]{32,36}", r.headers["x-request-id"]
            )
        # Weird languages fall back to Russian; nothing of the header comes back.
        for value in (
            "en\r\nSet-Cookie: evil=1".replace("\r\n", " "),
            "<script>",
            "*;q=NaN",
            "kk;q=1e9999",
            "x" * 2000,
        ):
            r = await c.get("/api/v1/accounts", headers={"Accept-Language": value})
            assert r.status_code == 401 and r.headers["content-language"] in ("ru", "kk", "en")
            assert "evil" not in str(r.headers) and "<script>" not in r.text
        # The language cookie can't inject anything either.
        c.cookies.set("lk_lang", "en<script>", domain="gateway.test")
        page = await c.get("/login")
        assert '<html lang="ru">' in page.text and "en<script>" not in page.text

    # Open redirects: after a language switch, only a path on this site.
    async with gateway.client() as c:
        token = csrf_of((await c.get("/login")).text)
        for target in (
            "//evil.example", "///evil.example", "https://evil.example", "http:evil.example", "/\\evil.example",
            "\\\\evil.example", "/\\/evil.example", "javascript:alert(1)", " //evil.example", "\t//evil.example",
            "/%2F%2Fevil.example", "/\t/evil.example", "/\r\n/evil.example", "/login\r\nLocation: https://evil.example",
            "/login\r\nSet-Cookie: lk_session=fixed", "data:text/html,<script>alert(1)</script>", "", "evil.example",
        ):  # fmt: skip
            r = await c.post(
                "/language",
                data={"csrf_token": token, "lang": "ru", "next": target},
                headers={"Origin": BASE_URL},
            )
            assert r.status_code == 303, (target, r.status_code)
            location = r.headers["location"]
            assert location.startswith("/") and not location.startswith(("//", "/\\")), (target, location)
            assert "\r" not in location and "\n" not in location and "\t" not in location, (target, location)
            assert "evil" not in httpx.URL(BASE_URL).join(location).host, (target, location)
            assert "fixed" not in " ".join(r.headers.get_list("set-cookie")), target
        # After a login, the page asked for before it (never another site).
        alice = world.alice
        await c.get("/accounts/add?x=//evil.example")
        r = await portal_login(c, alice.email)
        assert r.headers["location"] == "/accounts/add?x=//evil.example"
        assert httpx.URL(BASE_URL).join(r.headers["location"]).host == "gateway.test"


async def test_no_path_traversal_and_nothing_internal_through_the_gateway(
    gateway: Gateway, world: World
) -> None:
    alice = world.alice
    no = alice.account
    transport = httpx.ASGITransport(app=gateway.app)

    async def raw(path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        """A request with the path exactly as given (httpx would normalize `..`)."""
        request = httpx.Request(
            "GET", BASE_URL, headers={"X-Forwarded-For": gateway.ip, **alice.auth, **(headers or {})}
        )
        request.url = request.url.copy_with(raw_path=path.encode())
        return await transport.handle_async_request(request)

    secrets_seen = (
        "GATEWAY_",
        "secret_key",
        "def create_app",
        "root:x:0:0",
        "PRIVATE KEY",
        "[tool.",
        "import ",
    )
    for path in (
        "/static/../api.py", "/static/%2e%2e/api.py", "/static/%2e%2e/%2e%2e/pyproject.toml", "/static/..%2fapi.py",
        "/static/..%2f..%2fsettings.py", "/static/css/../../../../../../etc/passwd", "/static/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc/passwd",
        "/static/....//....//etc/passwd", "/static/%252e%252e/api.py", "/static//etc/passwd", "/static/css/%00portal.css",
        "/static/..\\..\\api.py", "/static/css/portal.css/../../../api.py",
        f"/api/v1/accounts/{no}/receipts/..%2F..%2F..%2Finternal%2Fv1%2Faccess", f"/api/v1/accounts/{no}/receipts/2026-01%2F..%2F..",
        f"/api/v1/accounts/{no}/receipts/..%2f2026-01.pdf", f"/api/v1/accounts/{no}/services/..%2F..%2F..%2Fadmin/statement",
        f"/api/v1/accounts/{no}%2F..%2F..%2Finternal/payments", f"/api/v1/accounts/..%2F{no}/payments",
        f"/accounts/{no}/receipts/..%2F..%2Fadmin", f"/accounts/{no}/receipts/..%2F2026-01.pdf",
        f"/accounts/{no}/services/..%2F..%2Fetc/statement.pdf",
    ):  # fmt: skip
        r = await raw(path)
        await r.aread()
        assert r.status_code in (400, 404), (path, r.status_code)
        text = r.content.decode("utf-8", "replace")
        assert not any(s in text for s in secrets_seen), (path, text[:200])
    assert (await raw("/static/css/portal.css")).status_code == 200

    async with gateway.client() as c:
        # The services' internal APIs are not the gateway's: nothing there, with or without credentials.
        uid = alice.user_id
        for path in (
            f"/internal/v1/access/{uid}", f"/internal/v1/access/{uid}/{no}", "/internal/v1/jwks.json",
            "/internal/v1/accounts", f"/internal/v1/accounts/{no}", "/internal/v1/district-offices",
            f"/api/v1/../internal/v1/access/{uid}", f"/api/internal/v1/access/{uid}", f"/api/v1/internal/v1/access/{uid}",
            "/docs", "/redoc", "/openapi.json", "/api/v1/docs", "/admin", "/.env", "/.git/config",
        ):  # fmt: skip
            for headers in ({}, alice.auth):
                r = await c.get(path, headers=headers)
                assert r.status_code == 404, (path, r.status_code)
                assert uid not in r.text and no not in r.text
        spec = (await c.get("/api/v1/openapi.json")).json()
        assert not [p for p in spec["paths"] if "internal" in p or "metrics" in p]
        # /metrics and /readyz: not from the internet (everything there comes through the ingress, which
        # adds X-Forwarded-For); Prometheus and the kubelet call the pod directly.
        for path in ("/metrics", "/readyz"):
            for headers in ({}, {"Forwarded": "for=1.2.3.4"}, {"X-Real-IP": "1.2.3.4"}):
                r = await c.get(path, headers=headers)
                assert r.status_code == 404, (path, headers, r.status_code)
                assert "gateway_" not in r.text and "http_requests" not in r.text and "checks" not in r.text
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as direct:
        assert (await direct.get("/metrics")).status_code == 200
        assert (await direct.get("/healthz")).status_code == 200
