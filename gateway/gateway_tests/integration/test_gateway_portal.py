"""The portal's own behaviour over HTTP (the browser suite walks the pages): CSRF, session cookies and
fixation, security headers, a page whose service is down, and the language remembered."""

from __future__ import annotations

import asyncio
import re

import httpx

from .conftest import (
    BASE_URL,
    PASSWORD,
    Gateway,
    GatewayFactory,
    csrf_of,
    link,
    new_email,
    register_and_login,
    seed_account,
)


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def portal_login(c: httpx.AsyncClient, email: str) -> httpx.Response:
    token = csrf_of((await c.get("/login")).text)
    return await c.post("/login", data={"csrf_token": token, "email": email, "password": PASSWORD})


async def test_forms_without_the_sessions_csrf_token_are_refused(gateway: Gateway) -> None:
    async with gateway.client() as api:
        tokens = await register_and_login(api)
    async with gateway.client() as c:
        page = await c.get("/login")
        token = csrf_of(page.text)
        anonymous_session = c.cookies["lk_session"]
        form = {"email": tokens["email"], "password": PASSWORD}

        for data, headers in (
            (form, {}),  # no token
            ({**form, "csrf_token": "forged"}, {}),  # a wrong token
            ({**form, "csrf_token": token}, {"Origin": "https://evil.example"}),  # the right one, cross-site
            ({**form, "csrf_token": token}, {"Sec-Fetch-Site": "cross-site"}),
        ):
            r = await c.post("/login", data=data, headers=headers)
            assert r.status_code == 403
            assert "Форма устарела" in r.text
            assert c.cookies["lk_session"] == anonymous_session

        # Another browser's token doesn't fit this session either.
        async with gateway.client() as other:
            foreign = csrf_of((await other.get("/login")).text)
        assert (await c.post("/login", data={**form, "csrf_token": foreign})).status_code == 403

        r = await c.post("/login", data={**form, "csrf_token": token}, headers={"Origin": BASE_URL})
        assert r.status_code == 303 and r.headers["location"] == "/"
        # Session fixation: the login issues a new session id; the old one is worth nothing.
        assert c.cookies["lk_session"] != anonymous_session
        start = await c.get("/")
        assert start.status_code == 200 and "Доступные лицевые счета" in start.text
        async with gateway.client() as thief:
            thief.cookies.set("lk_session", anonymous_session)
            assert (await thief.get("/")).headers["location"] == "/login"

        # Logged in, a POST still needs the token; «Выход» without it changes nothing.
        assert (await c.post("/logout", data={})).status_code == 403
        assert (await c.get("/")).status_code == 200
        token = csrf_of((await c.get("/")).text)
        r = await c.post("/logout", data={"csrf_token": token})
        assert r.status_code == 303 and r.headers["location"] == "/login"
        assert (await c.get("/")).headers["location"] == "/login"


async def test_an_expired_access_token_is_refreshed_transparently_once(gateway: Gateway) -> None:
    async with gateway.client() as api:
        tokens = await register_and_login(api)
    async with gateway.client() as c:
        assert (await portal_login(c, tokens["email"])).status_code == 303
        sessions = gateway.app.state.parts.sessions
        session = await sessions.load(c.cookies["lk_session"])
        assert session is not None and session.authenticated
        before = (session.access_token, session.refresh_token)
        session.access_expires_at = 0.0  # as if the 5-minute token had run out
        await sessions.save(session)

        # Several requests of the same session at once: one refresh (identity would end the session if
        # a rotated refresh token came back), and every page is served.
        pages = await asyncio.gather(*(c.get("/profile") for _ in range(4)))
        assert [p.status_code for p in pages] == [200] * 4
        assert all("Персональные настройки" in p.text for p in pages)
        after = await sessions.load(c.cookies["lk_session"])
        assert after is not None and after.authenticated
        assert (after.access_token, after.refresh_token) != before
        assert after.access_expires_at > 0
        assert (await c.get("/")).status_code == 200


async def test_pages_carry_the_security_headers_and_cookie_flags(make_gateway: GatewayFactory) -> None:
    async with make_gateway() as gw, gw.client() as c:
        r = await c.get("/login")
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "same-origin"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["cache-control"] == "no-store"
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
        # No inline script or style anywhere: everything is a local static file.
        assert "<script>" not in r.text and "style=" not in r.text and "<style" not in r.text
        assert re.findall(r'<script src="([^"]+)"', r.text) == ["/static/js/portal.js"]
        links = re.findall(r'(?:src|href|action)="([^"]+)"', r.text)
        assert all(link.startswith(("/", "#", "tel:", "mailto:")) for link in links), links
        missing = await c.get("/no-such-page", headers={"Accept-Language": "en"})
        assert missing.status_code == 404 and "Not found" in missing.text
        assert missing.headers["content-type"].startswith("text/html")
        static = await c.get("/static/css/portal.css")
        assert static.status_code == 200 and "max-age" in static.headers["cache-control"]
    async with make_gateway(public_base_url="https://lk.example.kz") as gw, gw.client() as c:
        r = await c.get("/login")
        assert "secure" in r.headers["set-cookie"].lower()
        assert "max-age" in r.headers["strict-transport-security"]


async def test_a_page_degrades_only_the_part_of_the_service_that_is_down(
    make_gateway: GatewayFactory, kafka_bootstrap: str
) -> None:
    async with make_gateway(ledger_url="http://127.0.0.1:9", upstream_timeout_s=1.0) as gw, gw.client() as c:
        email = new_email()
        tokens = await register_and_login(c, email)
        account = await seed_account(kafka_bootstrap)
        await link(c, tokens, account)
        assert (await portal_login(c, email)).status_code == 303

        page = await c.get(f"/accounts/{account.account_no}/payments")
        assert page.status_code == 200
        text = text_of(page.text)
        assert "Раздел временно недоступен" in text and "Начисления и платежи" in text
        # The rest of the page is there: header, menu, right panel.
        assert account.account_no in text and account.household.address in text
        assert "Информация по услугам" in text and "Контактные данные Контакт-центра" in text
        assert "Районное отделение АлматыЭнергоСбыт (РОЭС)" in text

        start = text_of((await c.get("/")).text)
        assert account.account_no in start and "Баланс временно недоступен" in start
        # A section on another service is whole.
        info = text_of((await c.get(f"/accounts/{account.account_no}")).text)
        assert "Количество постоянно проживающих" in info and "временно недоступен" not in info


async def test_the_language_is_switched_on_any_page_and_remembered(gateway: Gateway) -> None:
    async with gateway.client() as api:
        tokens = await register_and_login(api)
    async with gateway.client() as c:
        token = csrf_of((await c.get("/login")).text)
        r = await c.post("/language", data={"csrf_token": token, "lang": "kk", "next": "/login"})
        assert r.status_code == 303 and r.headers["location"] == "/login"
        assert c.cookies["lk_lang"] == "kk"
        page = await c.get("/login")
        assert '<html lang="kk">' in page.text and "Жеке кабинетке кіру" in page.text
        token = csrf_of(page.text)
        r = await c.post("/login", data={"csrf_token": token, "email": tokens["email"], "password": PASSWORD})
        assert r.status_code == 303
        # Chosen on this device before the login: kept, and stored in the profile.
        me = await c.get("/api/v1/me", headers={"Authorization": tokens["Authorization"]})
        assert me.json()["language"] == "kk"
        start = await c.get("/")
        assert '<html lang="kk">' in start.text
        token = csrf_of(start.text)
        await c.post("/language", data={"csrf_token": token, "lang": "en", "next": "/"})
        assert "Available personal accounts" in (await c.get("/")).text
    # Another device without the cookie gets the profile's language at the login.
    async with gateway.client() as fresh:
        token = csrf_of((await fresh.get("/login")).text)
        await fresh.post("/login", data={"csrf_token": token, "email": tokens["email"], "password": PASSWORD})
        assert fresh.cookies["lk_lang"] == "en"
        assert '<html lang="en">' in (await fresh.get("/")).text
