"""Forged, tampered and stale tokens: `alg: none`, HMAC with the public key, another key (with identity's
`kid` or an unknown one), a `kid` that is a path, an embedded `jwk`, expired, not yet valid, the wrong
audience or issuer, missing claims, a payload changed after signing; and real tokens of sessions that
identity ended (logout, a reused refresh token, a password change, a password reset): all refused with
401 at the gateway. Refresh tokens and reset links work once.

The gateway under test trusts identity's real keys plus one test key, so a token signed with the test
key and the right claims is the control that passes (and each forgery differs from it in one thing).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.api import create_app
from service_runtime.auth import TokenVerifier
from tests.security.conftest import World
from tests.security.support import (
    PASSWORD,
    Gateway,
    gateway_settings,
    login,
    new_customer,
    portal_login,
    problem,
    register,
)

IDENTITY = "http://127.0.0.1:8001"
TEST_KID = "security-suite-test-key"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}."


@pytest.fixture
async def trusting_gateway(
    running_services: str, stack_env: dict[str, str]
) -> AsyncIterator[tuple[Gateway, Ed25519PrivateKey, dict[str, Any]]]:
    """A gateway whose verifier knows identity's keys and a test key (and never refetches)."""
    async with httpx.AsyncClient(timeout=30) as c:
        real = (await c.get(f"{IDENTITY}/internal/v1/jwks.json")).json()
    key = Ed25519PrivateKey.generate()
    test_jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
    verifier = TokenVerifier("http://127.0.0.1:9/unused", cache_s=1e9, refetch_floor_s=1e9)
    verifier.load_jwks({"keys": [*real["keys"], {**test_jwk, "kid": TEST_KID}]})
    settings = gateway_settings()
    app = create_app(settings)
    app.state.token_verifier = verifier
    async with app.router.lifespan_context(app):
        yield Gateway(app, settings), key, real


def _claims(user_id: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": "lk-identity",
        "aud": "lk-portal",
        "sub": user_id,
        "sid": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 300,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


async def test_forged_and_tampered_tokens_are_refused(
    trusting_gateway: tuple[Gateway, Ed25519PrivateKey, dict[str, Any]], world: World
) -> None:
    gw, key, real = trusting_gateway
    real_kid = real["keys"][0]["kid"]
    real_x = base64.urlsafe_b64decode(real["keys"][0]["x"] + "==")
    alice, bob = world.alice, world.bob
    other_key = Ed25519PrivateKey.generate()

    def signed(
        claims: dict[str, Any],
        *,
        with_key: Ed25519PrivateKey = key,
        kid: str | None = TEST_KID,
        **header: Any,
    ) -> str:
        headers = {"kid": kid, **header} if kid is not None else dict(header)
        return jwt.encode(claims, with_key, algorithm="EdDSA", headers=headers)

    probe = f"/api/v1/accounts/{alice.account}"  # the gateway's own check, before any service sees the token

    async with gw.client() as c:
        # The control: the test key with the right claims passes the gateway (and Alice's account is hers).
        control = await c.get(probe, headers={"Authorization": f"Bearer {signed(_claims(alice.user_id))}"})
        assert control.status_code != 401 or control.json()["code"] != "invalid_token", control.text
        real_token = alice.token
        head, body, signature = real_token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(body + "=="))
        forged_body = _b64(json.dumps({**claims, "sub": bob.user_id}).encode())
        hmac_key = real_x  # the "HS256 with the public key as the secret" confusion
        forgeries = {
            "alg none": _unsigned({"alg": "none", "kid": real_kid}, _claims(alice.user_id)),
            "alg None": _unsigned({"alg": "None", "kid": TEST_KID}, _claims(alice.user_id)),
            "alg none, real signature kept": f"{_b64(json.dumps({'alg': 'none', 'kid': real_kid}).encode())}.{body}.{signature}",
            "HS256 with the public key": jwt.encode(_claims(alice.user_id), hmac_key, algorithm="HS256", headers={"kid": real_kid}),
            "another key, identity's kid": signed(_claims(alice.user_id), with_key=other_key, kid=real_kid),
            "another key, unknown kid": signed(_claims(alice.user_id), with_key=other_key, kid="attacker"),
            "another key, no kid": signed(_claims(alice.user_id), with_key=other_key, kid=None),
            "kid is a path": signed(_claims(alice.user_id), kid="../../../../../../dev/null"),
            "kid with SQL": signed(_claims(alice.user_id), kid="x' OR '1'='1"),
            "embedded jwk": signed(
                _claims(alice.user_id), with_key=other_key, kid="attacker",
                jwk=json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(other_key.public_key())),
            ),
            "jku to the attacker": signed(_claims(alice.user_id), with_key=other_key, kid="attacker", jku="https://evil.example/jwks.json"),
            "expired": signed(_claims(alice.user_id, iat=int(time.time()) - 900, exp=int(time.time()) - 600)),
            "expired a second ago": signed(_claims(alice.user_id, exp=int(time.time()) - 1)),
            "not yet valid": signed(_claims(alice.user_id, nbf=int(time.time()) + 3600)),
            "wrong audience": signed(_claims(alice.user_id, aud="another-app")),
            "audience list without ours": signed(_claims(alice.user_id, aud=["another-app"])),
            "wrong issuer": signed(_claims(alice.user_id, iss="evil-identity")),
            "no exp": signed(_claims(alice.user_id, exp=None)),
            "no sid": signed(_claims(alice.user_id, sid=None)),
            "no sub": signed(_claims(alice.user_id, sub=None)),
            "sub not a uuid": signed(_claims("1 OR 1=1")),
            "payload changed after signing": f"{head}.{forged_body}.{signature}",
            "signature of another token": f"{head}.{body}.{signed(_claims(alice.user_id)).split('.')[2]}",
            "no signature": f"{head}.{body}.",
            "two parts": f"{head}.{body}",
            "garbage": "not-a-token",
            "huge": "a" * 60_000,
            "empty": "",
        }  # fmt: skip
        for name, token in forgeries.items():
            r = await c.get(probe, headers={"Authorization": f"Bearer {token}"})
            try:
                body_ = problem(r, 401)
            except AssertionError as exc:
                raise AssertionError(f"{name}: {exc}") from None
            assert body_["code"] in ("invalid_token", "not_authenticated"), (name, body_)
            assert r.headers["www-authenticate"] == "Bearer"
        # Credentials anywhere but the Authorization header are not credentials.
        for r in (
            await c.get(f"{probe}?access_token={real_token}"),
            await c.get(probe, headers={"Authorization": f"Basic {real_token}"}),
            await c.get(probe, headers={"Authorization": real_token}),
            await c.get(probe, headers={"Cookie": f"access_token={real_token}"}),
            await c.get(probe, headers={"X-Access-Token": real_token}),
        ):
            problem(r, 401, "not_authenticated")
        # The real token itself still works (the forgeries above didn't lock anything).
        assert (await c.get(probe, headers={"Authorization": f"Bearer {real_token}"})).status_code == 200


async def _mail_link(sink: Path, address: str, path: str, after: float) -> str:
    """The token of the newest `path` link mailed to `address` after `after` (a Unix time)."""
    pattern = re.compile(rf"{re.escape(path)}\?token=([A-Za-z0-9_\-]+)")
    for _ in range(120):
        for file in sorted(await asyncio.to_thread(lambda: list(sink.glob("*.eml"))), reverse=True):
            if file.stat().st_mtime < after - 1:
                break
            raw = file.read_bytes()
            if address.encode() not in raw:
                continue
            from email import message_from_bytes, policy

            message = message_from_bytes(raw, policy=policy.default)
            for part in message.walk():
                if part.get_content_type() == "text/plain":
                    match = pattern.search(part.get_content())
                    if match:
                        return match.group(1)
        await asyncio.sleep(0.5)
    raise AssertionError(f"no {path} link mailed to {address}")


async def test_ended_sessions_and_used_tokens_are_dead_everywhere(
    gateway: Gateway, stack_env: dict[str, str]
) -> None:
    async with gateway.client() as c:
        victim = await new_customer(c, "Жертвова Анна Петровна")

        def bearer(token: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {token}"}

        # Logout: the access token of the session dies at once (identity's revocation flag), not in 5 min.
        r = await c.post(
            "/api/v1/auth/logout", headers=victim.auth, json={"refresh_token": victim.refresh_token}
        )
        assert r.status_code == 204, r.text
        for path in ("/api/v1/accounts", "/api/v1/me"):
            body = problem(await c.get(path, headers=victim.auth), 401)
            assert body["code"] in ("session_revoked", "invalid_token"), body
        problem(await c.post("/api/v1/auth/refresh", json={"refresh_token": victim.refresh_token}), 401)

        # A refresh token works once; presenting it again ends the whole session (the thief's and the
        # owner's copies alike), including its newest access token.
        tokens = await login(c, victim.email)
        first = await c.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert first.status_code == 200, first.text
        rotated = first.json()
        assert (await c.get("/api/v1/accounts", headers=bearer(rotated["access_token"]))).status_code == 200
        reused = problem(
            await c.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}), 401
        )
        assert reused["code"] in ("refresh_token_reused", "invalid_refresh_token"), reused
        problem(await c.post("/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}), 401)
        for token in (tokens["access_token"], rotated["access_token"]):
            assert (
                problem(await c.get("/api/v1/accounts", headers=bearer(token)), 401)["code"]
                == "session_revoked"
            )

        # A password change ends every other session at once; the one that changed it goes on.
        here = await login(c, victim.email)
        elsewhere = await login(c, victim.email)
        browser = gateway.client()  # and a portal session (a third identity session)
        await portal_login(browser, victim.email)
        assert (await browser.get("/profile")).status_code == 200
        new_password = "Другой-пароль-2026"
        r = await c.post(
            "/api/v1/me/password",
            headers=bearer(here["access_token"]),
            json={
                "current_password": PASSWORD,
                "new_password": new_password,
                "new_password_confirm": new_password,
            },
        )
        assert r.status_code == 200, r.text
        assert (
            problem(await c.get("/api/v1/accounts", headers=bearer(elsewhere["access_token"])), 401)["code"]
            == "session_revoked"
        )
        assert (await c.get("/api/v1/accounts", headers=bearer(here["access_token"]))).status_code == 200
        page = await browser.get("/profile")
        assert page.status_code == 303 and page.headers["location"] == "/login"
        await browser.aclose()

        # A reset link works once; using it ends every session.
        sink = Path(stack_env["SMTP_SINK_DIR"])
        asked = time.time()
        r = await c.post("/api/v1/auth/password-reset", json={"email": victim.email})
        assert r.status_code == 202, r.text
        token = await _mail_link(sink, victim.email, "/reset-password", asked)
        third = "Третий-пароль-2026"
        r = await c.post("/api/v1/auth/password-reset/confirm", json={"token": token, "new_password": third})
        assert r.status_code == 200, r.text
        again = await c.post(
            "/api/v1/auth/password-reset/confirm",
            json={"token": token, "new_password": "Четвёртый-пароль-2026"},
        )
        assert problem(again, 400)["code"] in ("password_reset_token_used", "password_reset_token_invalid")
        forged = await c.post(
            "/api/v1/auth/password-reset/confirm",
            json={"token": token[:-2] + "xx", "new_password": "Пятый-пароль-2026"},
        )
        problem(forged, 400)
        assert (
            problem(await c.get("/api/v1/accounts", headers=bearer(here["access_token"])), 401)["code"]
            == "session_revoked"
        )
        problem(
            await c.post("/api/v1/auth/login", json={"email": victim.email, "password": new_password}), 401
        )
        assert (
            await c.post("/api/v1/auth/login", json={"email": victim.email, "password": third})
        ).status_code == 200

        # The e-mail change link too: once, and only for the user it was made for.
        fresh = await login(c, victim.email, third)
        new_address = f"moved-{uuid.uuid4().hex[:10]}@example.kz"
        asked = time.time()
        r = await c.post(
            "/api/v1/me/email",
            headers=bearer(fresh["access_token"]),
            json={"new_email": new_address, "current_password": third},
        )
        assert r.status_code == 202, r.text
        link = await _mail_link(sink, new_address, "/confirm-email", asked)
        thief_email = await register(c)
        thief = await login(c, thief_email)
        problem(
            await c.post(
                "/api/v1/me/email/confirm", headers=bearer(thief["access_token"]), json={"token": link}
            ),
            400,
        )
        r = await c.post(
            "/api/v1/me/email/confirm", headers=bearer(fresh["access_token"]), json={"token": link}
        )
        assert r.status_code == 200 and r.json()["email"] == new_address, r.text
        problem(
            await c.post(
                "/api/v1/me/email/confirm", headers=bearer(fresh["access_token"]), json={"token": link}
            ),
            400,
        )
        assert (await c.get("/api/v1/me", headers=bearer(thief["access_token"]))).json()[
            "email"
        ] == thief_email


async def test_a_token_while_identitys_keys_are_unreachable_is_a_503_not_a_500(
    make_gateway: Any, world: World
) -> None:
    async with make_gateway(jwks_url="http://127.0.0.1:9/internal/v1/jwks.json") as gw, gw.client() as c:
        for headers in (world.alice.auth, {**world.alice.auth, "Idempotency-Key": uuid.uuid4().hex}):
            r = await c.post(
                f"/api/v1/accounts/{world.alice.account}/requests",
                headers=headers,
                json={"category": "other", "text": "Проверка"},
            )
            assert r.status_code == 503, r.text
            assert r.json()["code"] == "service_unavailable" and r.headers["retry-after"] == "5"
        # A token that can't be one (not even a JWT) is still simply refused.
        r = await c.get("/api/v1/accounts", headers={"Authorization": "Bearer not-a-token"})
        assert r.status_code == 401
