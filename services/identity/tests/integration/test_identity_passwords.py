"""Changing a password (current, new, confirm) and the forgotten-password link, with their e-mails."""

from __future__ import annotations

import re
from email.message import EmailMessage

from argon2 import PasswordHasher, Type

from services.identity.tests.integration.identity_testkit import (
    PASSWORD,
    Identity,
    bearer,
    new_email,
    raw_of,
    text_of,
)

API = "/internal/v1"
NEW_PASSWORD = "Новый-надёжный-пароль-7"


def link_token(message: EmailMessage, path: str) -> str:
    match = re.search(rf"http://127\.0\.0\.1:8000{path}\?token=([A-Za-z0-9_\-]+)", text_of(message))
    assert match, text_of(message)
    return match.group(1)


async def test_change_password(identity: Identity) -> None:
    client = identity.client
    email = new_email("change")
    await identity.register(email, full_name="Сейтқали Нұрлан")
    here, elsewhere = await identity.login(email), await identity.login(email)

    async def change(current: str, new: str, confirm: str) -> tuple[int, dict[str, object]]:
        r = await client.post(
            f"{API}/me/password",
            json={"current_password": current, "new_password": new, "new_password_confirm": confirm},
            headers=bearer(here),
        )
        return r.status_code, r.json()

    status, body = await change("Не-тот-пароль-123", NEW_PASSWORD, NEW_PASSWORD)
    assert status == 422 and body["code"] == "wrong_current_password"
    assert body["errors"] == [
        {
            "field": "current_password",
            "message": "Текущий пароль указан неверно",
            "code": "wrong_current_password",
        }
    ]
    status, body = await change(PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "!")
    assert status == 422 and body["detail"] == "Пароли не совпадают"
    assert [(e["field"], e["code"]) for e in body["errors"]] == [
        ("new_password_confirm", "password_confirmation_mismatch")
    ]
    for weak, code in [
        ("short1", "password_too_short"),
        (email.upper(), "password_equals_email"),
        ("ж" * 12, "password_single_character"),
        ("x" * 129, "password_too_long"),
    ]:
        status, body = await change(PASSWORD, weak, weak)
        assert status == 422 and code in {e["code"] for e in body["errors"]}, (weak, body)
    status, body = await change(PASSWORD, PASSWORD, PASSWORD)
    assert status == 422 and body["code"] == "password_unchanged"
    # None of the refusals changed anything or ended a session.
    assert (await client.get(f"{API}/me", headers=bearer(elsewhere))).status_code == 200

    status, body = await change(PASSWORD, NEW_PASSWORD, NEW_PASSWORD)
    assert status == 200 and "Пароль изменён" in str(body["message"])

    # This session goes on (and can refresh); every other one is over and cannot refresh.
    assert (await client.get(f"{API}/me", headers=bearer(here))).status_code == 200
    assert (
        await client.post(f"{API}/auth/refresh", json={"refresh_token": here["refresh_token"]})
    ).status_code == 200
    assert (await client.get(f"{API}/me", headers=bearer(elsewhere))).json()["code"] == "session_revoked"
    old = await client.post(f"{API}/auth/refresh", json={"refresh_token": elsewhere["refresh_token"]})
    assert old.status_code == 401 and old.json()["code"] == "session_revoked"

    # From the next login on, only the new password works.
    old_login = await client.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
    assert old_login.status_code == 401
    await identity.login(email, NEW_PASSWORD)

    # The notice: what changed and when, what to do if it wasn't you; never a password.
    (notice,) = await identity.mail_to(email)
    assert notice["Subject"] == "Ваш пароль изменён"
    assert notice["Content-Language"] == "ru"
    text = text_of(notice)
    assert "Здравствуйте, Сейтқали Нұрлан!" in text
    assert "(время Алматы)" in text and "Все остальные сеансы завершены" in text
    assert "Если это были не вы" in text and "http://127.0.0.1:8000/reset-password" in text
    raw = raw_of(notice)
    assert NEW_PASSWORD not in raw and PASSWORD not in raw
    assert "?token=" not in raw

    # Five wrong current passwords later, the account is locked out of this endpoint too.
    statuses = [
        (await change(f"Wrong-password-{i}", NEW_PASSWORD + "x", NEW_PASSWORD + "x"))[0] for i in range(5)
    ]
    assert statuses[-1] == 429


async def test_forgotten_password(identity: Identity) -> None:
    client = identity.client
    email = new_email("reset")
    user_id = await identity.register(email, full_name="Әлиханова Гүлнұр", language="kk")
    sessions = [await identity.login(email), await identity.login(email)]
    unknown = new_email("unknown")

    known_r = await client.post(f"{API}/auth/password-reset", json={"email": email.upper()})
    unknown_r = await client.post(f"{API}/auth/password-reset", json={"email": unknown})
    assert known_r.status_code == unknown_r.status_code == 202
    assert known_r.json() == unknown_r.json()
    bad = await client.post(f"{API}/auth/password-reset", json={"email": "nonsense"})
    assert bad.status_code == 422

    (message,) = await identity.mail_to(email)
    assert message["Subject"] == "Құпиясөзді қалпына келтіру"  # the user's language: Kazakh
    assert message["Content-Language"] == "kk"
    text = text_of(message)
    assert "Сәлеметсіз бе, Әлиханова Гүлнұр!" in text and "30 минут" in text
    token = link_token(message, "/reset-password")
    assert PASSWORD not in raw_of(message)
    # Nothing at all was queued for the unknown address, and the token is stored only as a digest.
    assert await identity.harness.fetch("SELECT 1 FROM outbound_mail WHERE to_address = %s", (unknown,)) == []
    stored = await identity.harness.fetch(
        "SELECT token_hash FROM password_reset_tokens WHERE user_id = %s", (user_id,)
    )
    assert len(stored) == 1 and stored[0][0] != token and len(stored[0][0]) == 64

    # A weak password is refused without using the link up.
    weak = await client.post(
        f"{API}/auth/password-reset/confirm", json={"token": token, "new_password": "123"}
    )
    assert weak.status_code == 422
    ok = await client.post(
        f"{API}/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert ok.status_code == 200 and ok.json()["message"] == "Пароль изменён. Войдите с новым паролем"

    # Every session is over; the old password is dead; the new one works; the address counts as verified.
    for tokens in sessions:
        r = await client.post(f"{API}/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert r.status_code == 401
        assert (await client.get(f"{API}/me", headers=bearer(tokens))).status_code == 401
    assert (
        await client.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
    ).status_code == 401
    fresh = await identity.login(email, NEW_PASSWORD)
    assert (await client.get(f"{API}/me", headers=bearer(fresh))).json()["email_verified"] is True

    # The link is single-use.
    reused = await client.post(
        f"{API}/auth/password-reset/confirm", json={"token": token, "new_password": "Ещё-один-пароль-99"}
    )
    assert reused.status_code == 400 and reused.json()["code"] == "password_reset_token_used"
    unknown_token = await client.post(
        f"{API}/auth/password-reset/confirm",
        json={"token": "forged-token", "new_password": "Ещё-один-пароль-99"},
    )
    assert unknown_token.status_code == 400 and unknown_token.json()["code"] == "password_reset_token_invalid"

    # An expired link (its 30 minutes are over) is refused.
    await client.post(f"{API}/auth/password-reset", json={"email": email})
    messages = await identity.mail_to(email, lambda m: "?token=" in text_of(m), count=2)
    second_token = link_token(messages[-1], "/reset-password")
    await identity.harness.fetch(
        "UPDATE password_reset_tokens SET expires_at = now() - interval '1 second'"
        " WHERE user_id = %s AND used_at IS NULL RETURNING 1",
        (user_id,),
    )
    expired = await client.post(
        f"{API}/auth/password-reset/confirm",
        json={"token": second_token, "new_password": "Ещё-один-пароль-99"},
    )
    assert expired.status_code == 400 and expired.json()["code"] == "password_reset_token_expired"

    # The notice of the reset, in Kazakh, without the password.
    (notice,) = await identity.mail_to(email, lambda m: m["Subject"] == "Құпиясөзіңіз өзгертілді")
    notice_text = text_of(notice)
    assert "қалпына келтіру сілтемесі арқылы өзгертілді" in notice_text
    assert NEW_PASSWORD not in raw_of(notice)

    # At most three reset mails per address per window: more requests still answer 202 but mail nothing.
    for _ in range(3):
        assert (await client.post(f"{API}/auth/password-reset", json={"email": email})).status_code == 202
    queued = await identity.harness.fetch(
        "SELECT count(*) FROM outbound_mail WHERE user_id = %s AND kind = 'password_reset'", (user_id,)
    )
    assert queued[0][0] == identity.settings.password_reset_max_per_window


async def test_a_hash_with_other_parameters_is_upgraded_at_the_next_sign_in(identity: Identity) -> None:
    """Users whose hash predates the current argon2 parameters (argon2-cffi's defaults were m=64 MiB,
    t=3, p=4) keep signing in, and their first successful sign-in stores a hash with the current ones."""
    email = new_email("rehash")
    user_id = await identity.register(email)
    old = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=2, type=Type.ID).hash(PASSWORD)

    async def stored() -> str:
        async with identity.harness.pool.connection() as conn:
            cur = await conn.execute("SELECT password_hash FROM credentials WHERE user_id = %s", (user_id,))
            row = await cur.fetchone()
        assert row is not None
        return str(row[0])

    fresh = await stored()  # registration hashes with the configured parameters: OWASP's by default
    assert fresh.startswith("$argon2id$v=19$m=19456,t=2,p=1$"), fresh
    async with identity.harness.pool.connection() as conn:
        await conn.execute("UPDATE credentials SET password_hash = %s WHERE user_id = %s", (old, user_id))

    # A wrong password changes nothing.
    wrong = await identity.client.post(
        f"{API}/auth/login", json={"email": email, "password": "Неверный-пароль-2025"}
    )
    assert wrong.status_code == 401
    assert await stored() == old

    await identity.login(email)
    upgraded = await stored()
    assert upgraded.startswith("$argon2id$v=19$m=19456,t=2,p=1$"), upgraded
    PasswordHasher().verify(upgraded, PASSWORD)  # the parameters are read from the hash itself
    await identity.login(email)
    assert await stored() == upgraded  # already current: not hashed again
