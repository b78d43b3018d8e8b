"""Changing the e-mail address (confirmed by a link), the full name and language, and the events."""

from __future__ import annotations

import re
from email.message import EmailMessage
from typing import Any

from aiokafka import AIOKafkaConsumer

from contracts.envelope import Envelope
from contracts.events.identity import TOPIC
from contracts.registry import registry
from identity.adapters.postgres import rebuild_users
from identity.domain.user import fold
from services.identity.tests.integration.identity_testkit import (
    PASSWORD,
    Identity,
    bearer,
    new_email,
    raw_of,
    text_of,
)
from tests.support.stack import eventually

API = "/internal/v1"


def confirm_token(message: EmailMessage) -> str:
    match = re.search(r"http://127\.0\.0\.1:8000/confirm-email\?token=([A-Za-z0-9_\-]+)", text_of(message))
    assert match, text_of(message)
    return match.group(1)


async def test_change_email(identity: Identity) -> None:
    client = identity.client
    old = new_email("old")
    user_id = await identity.register(old, full_name="Бекова Айгүл")
    tokens = await identity.login(old)
    other = new_email("other")
    await identity.register(other)

    async def request(new_email_value: str, password: str = PASSWORD) -> Any:
        return await client.post(
            f"{API}/me/email",
            json={"new_email": new_email_value, "current_password": password},
            headers=bearer(tokens),
        )

    async def confirm(token: str, auth: dict[str, Any] = tokens) -> Any:
        return await client.post(f"{API}/me/email/confirm", json={"token": token}, headers=bearer(auth))

    wrong = await request(new_email("new"), "Не-тот-пароль-1")
    assert wrong.status_code == 422 and wrong.json()["code"] == "wrong_current_password"
    invalid = await request("no-at-sign")
    assert invalid.status_code == 422 and invalid.json()["errors"][0]["code"] == "email_invalid"
    same = await request(old.upper())
    assert same.status_code == 422 and same.json()["code"] == "email_unchanged"
    taken = await request(other.upper())
    assert taken.status_code == 409 and taken.json()["code"] == "email_taken"

    first_new, new = new_email("first"), new_email("new")
    assert (await request(first_new)).status_code == 202
    accepted = await request(new)  # a second request supersedes the first
    assert accepted.status_code == 202 and "подтверждения" in accepted.json()["message"]

    # Nothing changed yet.
    assert (await client.get(f"{API}/me", headers=bearer(tokens))).json()["email"] == old

    # The link goes to the new address; a notice (masked new address, no link token) to the old one.
    (confirmation,) = await identity.mail_to(new)
    assert confirmation["Subject"] == "Подтвердите новый адрес e-mail"
    assert "24 ч." in text_of(confirmation)
    token = confirm_token(confirmation)
    notices = await identity.mail_to(old, count=2)
    assert {m["Subject"] for m in notices} == {"Запрошена смена адреса e-mail"}
    notice_text = text_of(notices[-1])
    masked = f"{new[0]}***{new.split('@')[0][-1]}@example.kz"
    assert masked in notice_text and new not in raw_of(notices[-1])
    assert "Если это были не вы" in notice_text and "confirm-email" not in raw_of(notices[-1])
    (first_confirmation,) = await identity.mail_to(first_new)
    superseded = await confirm(confirm_token(first_confirmation))
    assert superseded.status_code == 400 and superseded.json()["code"] == "email_change_token_used"

    # Someone else's link is unknown to me; a forged one too.
    stranger = await identity.login(other)
    assert (await confirm(token, stranger)).json()["code"] == "email_change_token_invalid"
    assert (await confirm("forged")).json()["code"] == "email_change_token_invalid"
    assert (await client.post(f"{API}/me/email/confirm", json={"token": token})).status_code == 401

    done = await confirm(token)
    assert done.status_code == 200
    assert done.json() == {
        "user_id": user_id,
        "email": new,
        "email_verified": True,
        "full_name": "Бекова Айгүл",
        "language": "ru",
        "message": "Адрес e-mail изменён",
    }
    again = await confirm(token)
    assert again.status_code == 400 and again.json()["code"] == "email_change_token_used"
    assert (
        await client.post(f"{API}/auth/login", json={"email": old, "password": PASSWORD})
    ).status_code == 401
    await identity.login(new.upper())

    # Taken between request and confirmation: refused at confirmation, and nothing changes.
    wanted = new_email("wanted")
    assert (await request(wanted)).status_code == 202
    (late_confirmation,) = await identity.mail_to(wanted)
    await identity.register(wanted.upper())
    late = await confirm(confirm_token(late_confirmation))
    assert late.status_code == 409 and late.json()["code"] == "email_taken"
    assert (await client.get(f"{API}/me", headers=bearer(tokens))).json()["email"] == new

    # An expired link is refused.
    later = new_email("later")
    assert (await request(later)).status_code == 202
    (later_confirmation,) = await identity.mail_to(later)
    await identity.harness.fetch(
        "UPDATE email_change_requests SET expires_at = now() - interval '1 second'"
        " WHERE user_id = %s AND closed_at IS NULL RETURNING 1",
        (user_id,),
    )
    expired = await confirm(confirm_token(later_confirmation))
    assert expired.status_code == 400 and expired.json()["code"] == "email_change_token_expired"


async def test_full_name_and_language(identity: Identity) -> None:
    client = identity.client
    email = new_email("profile")
    user_id = await identity.register(email, language="en-US,en;q=0.9")
    tokens = await identity.login(email)

    async def patch(body: dict[str, Any]) -> Any:
        return await client.patch(f"{API}/me", json=body, headers=bearer(tokens))

    r = await patch({"full_name": "  Құрманғазы   Сағырбайұлы-Әбілқайыр  "})
    assert r.status_code == 200
    assert r.json()["full_name"] == "Құрманғазы Сағырбайұлы-Әбілқайыр"
    assert r.json()["message"] == "Изменения сохранены" and r.json()["language"] == "en"
    for name in ["Ғұмар Һәкім Іңкәр Өмір Үміт Ұлан Ңң", "О’Коннор Д'Артаньян", "Jean-Luc Picard", "Ли"]:
        ok = await patch({"full_name": name})
        assert ok.status_code == 200 and ok.json()["full_name"] == name
    for bad, code in [
        ("Иван2", "full_name_invalid_characters"),
        ("Иван!", "full_name_invalid_characters"),
        ("-Иван", "full_name_invalid_format"),
        ("Иван--Петров", "full_name_invalid_format"),
        ("Я", "full_name_too_short"),
        ("Ж" * 151, "full_name_too_long"),
        ("   ", "full_name_too_short"),
    ]:
        refused = await patch({"full_name": bad})
        assert refused.status_code == 422, bad
        assert refused.json()["errors"][0] == {
            "field": "full_name",
            "code": code,
            "message": refused.json()["errors"][0]["message"],
        }
    assert (await patch({})).status_code == 422
    assert (await patch({"language": "de"})).json()["errors"][0]["message"] == "Допустимые языки: ru, kk, en"
    changed = await patch({"language": "kk"})
    assert changed.json()["language"] == "kk"
    assert (await patch({"full_name": "Ли", "language": "kk"})).status_code == 200  # no change: no event
    me = await client.get(f"{API}/me", headers=bearer(tokens))
    assert me.json() == {
        "user_id": user_id,
        "email": email,
        "email_verified": False,
        "full_name": "Ли",
        "language": "kk",
    }
    events = await identity.harness.fetch(
        "SELECT event_type FROM events WHERE stream_id = %s ORDER BY stream_version", (f"user:{user_id}",)
    )
    assert [e for (e,) in events] == ["UserRegistered"] + ["FullNameChanged"] * 5 + ["LanguageChanged"]


async def _read_to_end(bootstrap: str, topic: str) -> list[Any]:
    """Every record of `topic`, from the beginning to the end offsets seen while reading.

    (`tests.support.stack.read_topic` stops at a record count, which a shared topic can't give us.)
    """
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[Any] = []
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=500)
            for recs in batch.values():
                records.extend(recs)
            assigned = list(consumer.assignment())
            if assigned:
                ends = await consumer.end_offsets(assigned)
                positions = {tp: await consumer.position(tp) for tp in assigned}
                if all(positions[tp] >= ends[tp] for tp in assigned):
                    return records
    finally:
        await consumer.stop()


async def _published(identity: Identity, streams: set[str], expect: int) -> list[Envelope]:
    """The envelopes of `streams` on identity's topic (other tests' events skipped)."""
    mine: list[Envelope] = []

    async def all_there() -> bool:
        nonlocal mine
        records = await _read_to_end(identity.settings.kafka_bootstrap_servers, TOPIC)
        envelopes = [Envelope.model_validate_json(r.value) for r in records]
        mine = sorted(
            (e for e in envelopes if e.stream_id in streams), key=lambda e: (e.stream_id, e.stream_version)
        )
        return len(mine) >= expect

    await eventually(all_there, timeout_s=60, every_s=0.5)
    return mine


async def test_events_on_the_topic_are_correct_and_secret_free(identity: Identity) -> None:
    client = identity.client
    email = new_email("events")
    password, new_password = "Событийный-пароль-1", "Событийный-пароль-2"
    user_id = await identity.register(email, password=password, full_name="Тестов Тест", language="kk")
    tokens = await identity.login(email, password)
    r = await client.post(
        f"{API}/me/password",
        json={
            "current_password": password,
            "new_password": new_password,
            "new_password_confirm": new_password,
        },
        headers=bearer(tokens),
    )
    assert r.status_code == 200
    new = new_email("events-new")
    r = await client.post(
        f"{API}/me/email", json={"new_email": new, "current_password": new_password}, headers=bearer(tokens)
    )
    assert r.status_code == 202
    (confirmation,) = await identity.mail_to(new)
    token = confirm_token(confirmation)
    assert (
        await client.post(f"{API}/me/email/confirm", json={"token": token}, headers=bearer(tokens))
    ).is_success
    assert (
        await client.patch(f"{API}/me", json={"full_name": "Тестова Тест"}, headers=bearer(tokens))
    ).is_success
    assert (await client.post(f"{API}/auth/password-reset", json={"email": new})).status_code == 202
    (reset_mail,) = await identity.mail_to(new, lambda m: "reset-password?token=" in text_of(m))
    reset_token = re.search(r"token=([A-Za-z0-9_\-]+)", text_of(reset_mail)).group(1)  # type: ignore[union-attr]
    reset_password = "Событийный-пароль-3"
    r = await client.post(
        f"{API}/auth/password-reset/confirm", json={"token": reset_token, "new_password": reset_password}
    )
    assert r.status_code == 200

    stream = f"user:{user_id}"
    envelopes = await _published(identity, {stream}, expect=6)
    assert [(e.event_type, e.stream_version) for e in envelopes] == [
        ("UserRegistered", 1),
        ("PasswordChanged", 2),
        ("EmailChangeRequested", 3),
        ("EmailChanged", 4),
        ("FullNameChanged", 5),
        ("PasswordChanged", 6),
    ]
    assert all(e.producer == "identity" and e.schema_version == 1 and e.correlation_id for e in envelopes)
    payloads = [e.payload for e in envelopes]
    assert payloads[0] == {"user_id": user_id, "email": email, "full_name": "Тестов Тест", "language": "kk"}
    assert payloads[1] == {"user_id": user_id, "via": "change"}
    assert payloads[2]["new_email"] == new and set(payloads[2]) == {
        "user_id",
        "change_id",
        "new_email",
        "expires_at",
    }
    assert payloads[3] == {
        "user_id": user_id,
        "change_id": payloads[2]["change_id"],
        "old_email": email,
        "new_email": new,
    }
    assert payloads[4] == {"user_id": user_id, "full_name": "Тестова Тест"}
    assert payloads[5] == {"user_id": user_id, "via": "reset"}

    # No secret: no password, no hash, no token (nor a token's digest) anywhere in the events.
    hashes = await identity.harness.fetch(
        "SELECT password_hash FROM credentials WHERE user_id = %s", (user_id,)
    )
    digests = await identity.harness.fetch(
        "SELECT token_hash FROM password_reset_tokens WHERE user_id = %s"
        " UNION ALL SELECT token_hash FROM email_change_requests WHERE user_id = %s",
        (user_id, user_id),
    )
    secrets = [password, new_password, reset_password, token, reset_token, tokens["refresh_token"]]
    secrets += [h for (h,) in hashes] + [d for (d,) in digests]
    raw = "\n".join(e.model_dump_json() for e in envelopes)
    for secret in secrets:
        assert secret not in raw
    assert "argon2" not in raw and "password_hash" not in raw and "token" not in raw

    # The events fold to the read model; rebuilding the read model from the store gives the same rows.
    parsed = [registry.parse(TOPIC, e.event_type, e.schema_version, e.payload) for e in envelopes]
    state = fold(parsed)
    assert state is not None
    row = await identity.harness.fetch(
        "SELECT email, email_verified, full_name, language, version FROM users WHERE user_id = %s", (user_id,)
    )
    assert row == [(state.email, state.email_verified, state.full_name, state.language, state.version)]
    assert row == [(new, True, "Тестова Тест", "kk", 6)]
    before = await identity.harness.fetch("SELECT * FROM users ORDER BY user_id")
    async with identity.harness.pool.connection() as conn:
        assert await rebuild_users(conn) > 0
    assert await identity.harness.fetch("SELECT * FROM users ORDER BY user_id") == before
