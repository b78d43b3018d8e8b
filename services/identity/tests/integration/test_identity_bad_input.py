"""Bad input at identity's internal API: NUL bytes and lone surrogates in any field are a 422 with a
Russian message and a code, never a 500 from PostgreSQL; no failure is counted for them."""

from __future__ import annotations

import json

from services.identity.tests.integration.identity_testkit import PASSWORD, Identity, new_email


async def test_nul_and_lone_surrogates_are_422_not_500(identity: Identity) -> None:
    email = new_email("nul")
    await identity.register(email)
    tokens = await identity.login(email)
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    cases = [
        ("/internal/v1/auth/login", {"email": "nul\x00@example.kz", "password": PASSWORD}, "email"),
        ("/internal/v1/auth/login", {"email": f"{email}\x00", "password": PASSWORD}, "email"),
        ("/internal/v1/auth/login", {"email": email, "password": f"{PASSWORD}\x00"}, "password"),
        ("/internal/v1/auth/register", {"email": "a\x00@example.kz", "password": PASSWORD, "full_name": "Тест Тест"}, "email"),
        ("/internal/v1/auth/register", {"email": new_email(), "password": PASSWORD, "full_name": "Тест\x00Тест"}, "full_name"),
        ("/internal/v1/auth/password-reset", {"email": f"{email}\x00"}, "email"),
        ("/internal/v1/auth/refresh", {"refresh_token": f"{tokens['refresh_token']}\x00"}, "refresh_token"),
        ("/internal/v1/auth/password-reset/confirm", {"token": "abc\x00", "new_password": PASSWORD}, "token"),
        ("/internal/v1/auth/login", {"email": "bad\ud800@example.kz", "password": PASSWORD}, "email"),
        ("/internal/v1/auth/login", {"email": "esc\x1b@example.kz", "password": PASSWORD}, "email"),
    ]  # fmt: skip
    for path, body, field in cases:
        r = await identity.client.post(
            path, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 422, (path, body, r.status_code, r.text)
        errors = r.json()["errors"]
        assert [e["field"] for e in errors] == [field], errors
        assert errors[0]["code"] in ("control_characters", "string_unicode")
        assert "символы" in errors[0]["message"]
    r = await identity.client.patch("/internal/v1/me", json={"full_name": "Иванов\x00Иван"}, headers=auth)
    assert r.status_code == 422 and r.json()["errors"][0]["code"] == "control_characters"
    # None of these counted as a failed login: the right password still works at once.
    assert (await identity.login(email))["access_token"]
