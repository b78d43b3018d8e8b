"""Registration, login, refresh-token rotation and reuse, logout, lockout, and access-token checks."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from identity.adapters.keys import public_jwk
from service_runtime.auth import InvalidToken, TokenVerifier
from services.identity.tests.integration.identity_testkit import (
    PASSWORD,
    Identity,
    bearer,
    new_email,
    random_ip,
)

API = "/internal/v1"


def claims_of(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


async def verifier_for(identity: Identity) -> TokenVerifier:
    """A verifier as the gateway has one, loaded from identity's published JWKS (no refetch for tests)."""
    r = await identity.client.get(f"{API}/jwks.json")
    assert r.status_code == 200
    verifier = TokenVerifier("http://127.0.0.1:1/unused", refetch_floor_s=3600)
    verifier.load_jwks(r.json())
    return verifier


async def test_register_validation_and_taken_address(identity: Identity) -> None:
    client = identity.client
    bad = await client.post(
        f"{API}/auth/register", json={"email": "not-an-address", "password": "Qz7#kP", "full_name": "R2-D2"}
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    problem = bad.json()
    assert problem["code"] == "validation_failed" and problem["status"] == 422
    codes = {(e["field"], e["code"]) for e in problem["errors"]}
    assert {("email", "email_invalid"), ("password", "password_too_short")} <= codes
    assert ("full_name", "full_name_invalid_characters") in codes
    assert "Qz7#kP" not in bad.text  # the input is never echoed

    missing = await client.post(f"{API}/auth/register", json={"email": new_email()})
    assert missing.status_code == 422
    assert {e["field"] for e in missing.json()["errors"]} == {"password", "full_name"}

    email = new_email("Taken")
    same_as_email = await client.post(
        f"{API}/auth/register", json={"email": email, "password": email.upper(), "full_name": "Ким Анна"}
    )
    assert [e["code"] for e in same_as_email.json()["errors"]] == ["password_equals_email"]

    user_id = await identity.register(email, language="kk-KZ,kk;q=0.9,ru;q=0.8")
    assert uuid.UUID(user_id)
    taken = await client.post(
        f"{API}/auth/register",
        json={"email": email.upper(), "password": PASSWORD, "full_name": "Другой Человек"},
    )
    assert taken.status_code == 409 and taken.json()["code"] == "email_taken"

    tokens = await identity.login(email.upper())  # the address is case-insensitive
    me = await client.get(f"{API}/me", headers=bearer(tokens))
    assert me.json() == {
        "user_id": user_id,
        "email": email,
        "email_verified": False,
        "full_name": "Иванов Иван Иванович",
        "language": "kk",
    }


async def test_concurrent_registrations_of_one_address(identity: Identity) -> None:
    email = new_email("race")
    variants = [email, email.upper(), email.capitalize(), email.replace("race", "RACE")]
    responses = await asyncio.gather(
        *(
            identity.client.post(
                f"{API}/auth/register", json={"email": v, "password": PASSWORD, "full_name": "Гонка Гонкова"}
            )
            for v in variants
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 409, 409, 409]
    rows = await identity.harness.fetch("SELECT count(*) FROM users WHERE lower(email) = %s", (email,))
    assert rows[0][0] == 1


async def test_login_tokens_refresh_rotation_reuse_and_logout(identity: Identity) -> None:
    client = identity.client
    email = new_email("session")
    user_id = await identity.register(email)
    tokens = await identity.login(email)
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 300
    assert set(tokens) == {"access_token", "token_type", "expires_in", "refresh_token"}

    # The access token: EdDSA, kid = RFC 7638 thumbprint, the agreed claims; the runtime verifier accepts it.
    header = jwt.get_unverified_header(tokens["access_token"])
    assert header["alg"] == "EdDSA" and header["kid"] == public_jwk(identity.key.public_key())["kid"]
    claims = claims_of(tokens["access_token"])
    assert claims["iss"] == "lk-identity" and claims["aud"] == "lk-portal" and claims["sub"] == user_id
    assert claims["exp"] - claims["iat"] == 300 and claims["jti"] and claims["sid"]
    verified = await (await verifier_for(identity)).verify(tokens["access_token"])
    assert str(verified.user_id) == user_id and verified.session_id == claims["sid"]

    # Rotation: each refresh gives a new refresh token in the same session (sid).
    r1 = await client.post(f"{API}/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r1.status_code == 200
    rotated = r1.json()
    assert rotated["refresh_token"] != tokens["refresh_token"]
    assert claims_of(rotated["access_token"])["sid"] == claims["sid"]
    r2 = await client.post(f"{API}/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert r2.status_code == 200
    latest = r2.json()

    # Reuse of a rotated token: 401, and the whole family is revoked (the latest token too).
    reuse = await client.post(f"{API}/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert reuse.status_code == 401 and reuse.json()["code"] == "refresh_token_reused"
    after = await client.post(f"{API}/auth/refresh", json={"refresh_token": latest["refresh_token"]})
    assert after.status_code == 401 and after.json()["code"] == "session_revoked"
    me = await client.get(f"{API}/me", headers=bearer(latest))
    assert me.status_code == 401 and me.json()["code"] == "session_revoked"
    # ...and the flag the gateway checks is set.
    flag = f"{identity.settings.redis_prefix}revoked-session:{claims['sid']}"
    assert await identity.redis.exists(flag) == 1
    assert 0 < await identity.redis.ttl(flag) <= 360

    garbage = await client.post(f"{API}/auth/refresh", json={"refresh_token": "no-such-token"})
    assert garbage.status_code == 401 and garbage.json()["code"] == "invalid_refresh_token"

    # Logout with the bearer token.
    second = await identity.login(email)
    assert (await client.get(f"{API}/me", headers=bearer(second))).status_code == 200
    out = await client.post(f"{API}/auth/logout", headers=bearer(second))
    assert out.status_code == 204
    assert (await client.get(f"{API}/me", headers=bearer(second))).json()["code"] == "session_revoked"
    refresh = await client.post(f"{API}/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert refresh.status_code == 401

    # Logout with only the refresh token.
    third = await identity.login(email)
    out = await client.post(f"{API}/auth/logout", json={"refresh_token": third["refresh_token"]})
    assert out.status_code == 204
    assert (await client.get(f"{API}/me", headers=bearer(third))).status_code == 401

    # Logout with nothing (or nothing valid) is 401.
    assert (await client.post(f"{API}/auth/logout")).status_code == 401
    nothing = await client.post(f"{API}/auth/logout", json={"refresh_token": "unknown"})
    assert nothing.status_code == 401
    assert (
        await client.post(f"{API}/auth/logout", headers={"Authorization": "Bearer x.y.z"})
    ).status_code == 401


async def test_wrong_password_and_unknown_email_look_the_same(
    identity: Identity, caplog: pytest.LogCaptureFixture
) -> None:
    email = new_email("same")
    await identity.register(email)
    wrong_password = "Неверный-пароль-2025"
    caplog.set_level(logging.INFO, logger="identity.audit")
    wrong = await identity.client.post(f"{API}/auth/login", json={"email": email, "password": wrong_password})
    unknown = await identity.client.post(
        f"{API}/auth/login", json={"email": new_email("nobody"), "password": wrong_password}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["detail"] == "Неверный e-mail или пароль"
    await identity.login(email)

    # Audited as JSON-able records, never with the password.
    audits = [r for r in caplog.records if r.name == "identity.audit"]
    kinds = [getattr(r, "audit", None) for r in audits]
    assert kinds.count("login_failed") >= 2 and "login_succeeded" in kinds
    reasons = {getattr(r, "reason", None) for r in audits if getattr(r, "audit", None) == "login_failed"}
    assert {"wrong_password", "unknown_email"} <= reasons
    for record in audits:
        dumped = json.dumps(record.__dict__, default=str)
        assert wrong_password not in dumped and PASSWORD not in dumped


async def test_lockout_per_email_and_per_client(identity: Identity) -> None:
    client = identity.client
    email = new_email("locked")
    await identity.register(email)
    statuses = []
    for _ in range(5):
        r = await client.post(
            f"{API}/auth/login",
            json={"email": email, "password": "wrong-password-123"},
            headers={"X-Forwarded-For": random_ip()},
        )
        statuses.append(r.status_code)
    assert statuses == [401, 401, 401, 401, 429]
    locked = await client.post(
        f"{API}/auth/login",
        json={"email": email, "password": PASSWORD},
        headers={"X-Forwarded-For": random_ip()},
    )
    assert locked.status_code == 429 and locked.json()["code"] == "too_many_attempts"
    retry_after = int(locked.headers["Retry-After"])
    assert 0 < retry_after <= identity.settings.login_failure_window_s

    # Per client address (first hop of X-Forwarded-For): 8 failures on any addresses lock that client out...
    attacker = random_ip()
    victim = new_email("victim")
    await identity.register(victim)
    for i in range(8):
        r = await client.post(
            f"{API}/auth/login",
            json={"email": new_email(f"guess{i}"), "password": "wrong-password-123"},
            headers={"X-Forwarded-For": f"{attacker}, 10.0.0.1"},
        )
    assert r.status_code == 429
    blocked = await client.post(
        f"{API}/auth/login",
        json={"email": victim, "password": PASSWORD},
        headers={"X-Forwarded-For": attacker},
    )
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
    # ...while the same account still works from elsewhere.
    await identity.login(victim, client=random_ip())


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_forged_expired_and_unsigned_tokens_are_rejected(identity: Identity) -> None:
    email = new_email("tokens")
    user_id = await identity.register(email)
    tokens = await identity.login(email)
    sid = claims_of(tokens["access_token"])["sid"]
    verifier = await verifier_for(identity)
    now = int(time.time())
    good_claims = {
        "iss": "lk-identity", "aud": "lk-portal", "sub": user_id, "sid": sid,
        "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex,
    }  # fmt: skip
    kid = public_jwk(identity.key.public_key())["kid"]
    stranger = Ed25519PrivateKey.generate()
    stranger_kid = public_jwk(stranger.public_key())["kid"]

    forged = {
        # another key that claims to be ours (bad signature), and another key under its own kid (unknown key)
        "another key, our kid": jwt.encode(good_claims, stranger, algorithm="EdDSA", headers={"kid": kid}),
        "another key, its kid": jwt.encode(
            good_claims, stranger, algorithm="EdDSA", headers={"kid": stranger_kid}
        ),
        "expired": jwt.encode(
            {**good_claims, "iat": now - 900, "exp": now - 600},
            identity.key,
            algorithm="EdDSA",
            headers={"kid": kid},
        ),
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{_b64(good_claims)}.",
        "HS256 with the public key": jwt.encode(
            good_claims, "public-key-as-hmac-secret-0123456789abcdef", algorithm="HS256", headers={"kid": kid}
        ),
        "wrong audience": jwt.encode(
            {**good_claims, "aud": "someone-else"}, identity.key, algorithm="EdDSA", headers={"kid": kid}
        ),
        "no session id": jwt.encode(
            {k: v for k, v in good_claims.items() if k != "sid"},
            identity.key,
            algorithm="EdDSA",
            headers={"kid": kid},
        ),
    }
    for name, token in forged.items():
        with pytest.raises(InvalidToken):
            await verifier.verify(token)
        r = await identity.client.get(f"{API}/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, name
        assert r.json()["code"] == "invalid_token", name
        assert r.headers["WWW-Authenticate"] == "Bearer"

    # The control: the same claims signed with our key pass.
    ours = jwt.encode(good_claims, identity.key, algorithm="EdDSA", headers={"kid": kid})
    assert (await verifier.verify(ours)).session_id == sid
    assert (
        await identity.client.get(f"{API}/me", headers={"Authorization": f"Bearer {ours}"})
    ).status_code == 200
    assert (await identity.client.get(f"{API}/me")).json()["code"] == "not_authenticated"


async def test_jwks_publishes_current_and_previous_keys(identity: Identity) -> None:
    r = await identity.client.get(f"{API}/jwks.json")
    assert r.headers["cache-control"] == "public, max-age=300"
    keys = r.json()["keys"]
    current = public_jwk(identity.key.public_key())
    previous = public_jwk(identity.previous_key.public_key())
    assert [k["kid"] for k in keys] == [current["kid"], previous["kid"]]
    assert all(
        k["kty"] == "OKP" and k["crv"] == "Ed25519" and k["alg"] == "EdDSA" and "d" not in k for k in keys
    )

    # A token signed by the previous key (before a rotation) still verifies, until it expires.
    email = new_email("rotation")
    user_id = await identity.register(email)
    sid = claims_of((await identity.login(email))["access_token"])["sid"]
    now = int(time.time())
    old = jwt.encode(
        {"iss": "lk-identity", "aud": "lk-portal", "sub": user_id, "sid": sid, "iat": now, "exp": now + 300},
        identity.previous_key,
        algorithm="EdDSA",
        headers={"kid": previous["kid"]},
    )
    assert (await (await verifier_for(identity)).verify(old)).session_id == sid
    assert (
        await identity.client.get(f"{API}/me", headers={"Authorization": f"Bearer {old}"})
    ).status_code == 200
