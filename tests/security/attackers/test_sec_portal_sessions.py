"""The portal against a browser-borne attacker: CSRF on every form (no token, a wrong one, another
session's, the right one from a foreign Origin or a cross-site fetch), session fixation, what a session
cookie can't do (authenticate the API, be read by scripts, cross sites), and no CORS for foreign origins.
"""

from __future__ import annotations

import re

import httpx

from tests.security.conftest import World
from tests.security.support import (
    BASE_URL,
    PASSWORD,
    Gateway,
    csrf_of,
    new_customer,
    portal_login,
    snapshot,
)

ANONYMOUS_FORMS: dict[str, dict[str, str]] = {
    "/login": {"email": "someone@example.kz", "password": PASSWORD},
    "/register": {"full_name": "Иванов Иван", "email": "csrf@example.kz", "password": PASSWORD, "password_confirm": PASSWORD},
    "/forgot-password": {"email": "someone@example.kz"},
    "/reset-password": {"token": "x", "password": PASSWORD, "password_confirm": PASSWORD},
    "/language": {"lang": "en", "next": "/"},
}  # fmt: skip


def _user_forms(no: str) -> dict[str, dict[str, str]]:
    return {
        "/accounts/add": {"account_no": "123456789012", "last_payment_month": "2026-01", "last_payment_amount": "1.00"},
        f"/accounts/{no}/delete": {"answer": "yes"},
        f"/accounts/{no}/calculator": {"reading_date": "2026-01-31", "reading_value": "1500"},
        f"/accounts/{no}/readings": {"reading_date": "2026-01-31", "value": "1500"},
        f"/accounts/{no}/requests": {"category": "other", "text": "Заявка с чужого сайта"},
        f"/accounts/{no}/ebill": {"email": "attacker@example.kz"},
        "/profile/password": {"current_password": PASSWORD, "new_password": "Взломанный-пароль-1", "new_password_confirm": "Взломанный-пароль-1"},
        "/profile/email": {"new_email": "attacker@example.kz", "current_password": PASSWORD},
        "/confirm-email": {"token": "x"},
        "/profile": {"full_name": "Взломщик Взломщиков", "language": "en"},
        "/language": {"lang": "en", "next": "/"},
        "/logout": {},
    }  # fmt: skip


def _forged(token: str, foreign: str) -> list[tuple[str, dict[str, str], dict[str, str]]]:
    """(what, extra form fields, headers) of every forgery."""
    return [
        ("no token", {}, {}),
        ("empty token", {"csrf_token": ""}, {}),
        ("a wrong token", {"csrf_token": "forged" + token[6:]}, {}),
        ("another session's token", {"csrf_token": foreign}, {}),
        ("right token, foreign Origin", {"csrf_token": token}, {"Origin": "https://evil.example"}),
        ("right token, look-alike Origin", {"csrf_token": token}, {"Origin": BASE_URL + ".evil.example"}),
        ("right token, null Origin", {"csrf_token": token}, {"Origin": "null"}),
        ("right token, cross-site fetch", {"csrf_token": token}, {"Sec-Fetch-Site": "cross-site"}),
        ("right token, same-site fetch", {"csrf_token": token}, {"Sec-Fetch-Site": "same-site"}),
    ]


async def _assert_refused(
    c: httpx.AsyncClient, path: str, data: dict[str, str], token: str, foreign: str
) -> None:
    session = c.cookies.get("lk_session")
    for what, extra, headers in _forged(token, foreign):
        r = await c.post(path, data={**data, **extra}, headers=headers)
        assert r.status_code == 403, (path, what, r.status_code, r.text[:200])
        assert "Форма устарела" in r.text, (path, what)
        assert c.cookies.get("lk_session") == session, (path, what, "the session changed")


async def test_every_form_refuses_cross_site_and_tokenless_posts(gateway: Gateway, world: World) -> None:
    alice = world.alice
    async with gateway.client() as other:
        foreign = csrf_of((await other.get("/login")).text)
    # Anonymous forms (the login page's session exists before the login, with its own token).
    async with gateway.client() as c:
        token = csrf_of((await c.get("/login")).text)
        for path, data in ANONYMOUS_FORMS.items():
            await _assert_refused(c, path, data, token, foreign)
        assert "lk_lang" not in c.cookies  # /language changed nothing
    # Forms of a logged-in customer, on her own account: none of them does anything.
    async with gateway.client() as api:
        before = await snapshot(api, alice)
    async with gateway.client() as c:
        await portal_login(c, alice.email)
        token = csrf_of((await c.get("/")).text)
        for path, data in _user_forms(alice.account).items():
            await _assert_refused(c, path, data, token, foreign)
        # Still logged in, same language, nothing changed.
        page = await c.get("/")
        assert page.status_code == 200 and '<html lang="ru">' in page.text
    async with gateway.client() as api:
        assert await snapshot(api, alice) == before
        # A same-origin form with the right token does work (the checks above are not just "always 403").
        async with gateway.client() as c:
            await portal_login(c, alice.email)
            token = csrf_of((await c.get("/")).text)
            r = await c.post(
                "/language",
                data={"csrf_token": token, "lang": "ru", "next": "/"},
                headers={"Origin": BASE_URL, "Sec-Fetch-Site": "same-origin"},
            )
            assert r.status_code == 303


async def test_session_fixation_and_what_a_session_cookie_cannot_do(gateway: Gateway) -> None:
    async with gateway.client() as api:
        victim = await new_customer(api, "Фиксациева Анна")
    planted = "attacker-chosen-session-id-0123456789"
    async with gateway.client() as c:
        # A session id the server never issued is not adopted: a new random one is set instead.
        c.cookies.set("lk_session", planted, domain="gateway.test")
        page = await c.get("/login")
        issued = c.cookies.get("lk_session")
        assert issued and issued != planted and len(issued) >= 40
        cookie = page.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
        # An id issued before the login (an attacker could have planted this one) is worth nothing after.
        token = csrf_of(page.text)
        r = await c.post("/login", data={"csrf_token": token, "email": victim.email, "password": PASSWORD})
        assert r.status_code == 303
        logged_in = c.cookies.get("lk_session")
        assert logged_in not in (issued, planted)
        async with gateway.client() as attacker:
            attacker.cookies.set("lk_session", issued, domain="gateway.test")
            r = await attacker.get("/")
            assert r.status_code == 303 and r.headers["location"] == "/login"
            # The logged-in cookie does not authenticate the API (no ambient credentials there).
            attacker.cookies.set("lk_session", logged_in, domain="gateway.test")
            assert (await attacker.get("/api/v1/me")).status_code == 401
            assert (await attacker.get("/api/v1/accounts")).status_code == 401
        # Logout ends it on the server: the old cookie, replayed, is a stranger.
        token = csrf_of((await c.get("/")).text)
        assert (await c.post("/logout", data={"csrf_token": token})).status_code == 303
        async with gateway.client() as replay:
            replay.cookies.set("lk_session", logged_in, domain="gateway.test")
            r = await replay.get("/profile")
            assert r.status_code == 303 and r.headers["location"] == "/login"
        # Oversized or odd cookies are ignored, not errors.
        for value in ("x" * 4000, "../../etc/passwd", "' OR '1'='1", "%00"):
            async with gateway.client() as odd:
                odd.cookies.set("lk_session", value, domain="gateway.test")
                assert (await odd.get("/login")).status_code == 200


async def test_no_cross_origin_reads_of_the_api(gateway: Gateway, world: World) -> None:
    async with gateway.client() as c:
        preflight = await c.options(
            "/api/v1/accounts",
            headers={
                "Origin": "https://evil.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code in (400, 404, 405)
        r = await c.get("/api/v1/accounts", headers={**world.alice.auth, "Origin": "https://evil.example"})
        assert r.status_code == 200
        for response in (preflight, r):
            assert not any(h.lower().startswith("access-control-allow") for h in response.headers), (
                response.headers
            )
        # Personal data is never cached by browsers or proxies; pages can't be framed.
        assert r.headers["cache-control"] == "no-store"
        page = await c.get("/login")
        assert page.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert re.search(r"script-src 'self'(;|$)", page.headers["content-security-policy"])
