"""Mail delivery: queued with the change, sent by the worker, retried while SMTP is down, never twice."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable

import pytest

from identity.adapters.mail_sender import MailSender
from services.identity.tests.integration.identity_testkit import (
    Identity,
    identity_settings,
    new_email,
    running_identity,
    text_of,
)

API = "/internal/v1"


@pytest.fixture(scope="module")
async def quiet_identity(
    stack_env: dict[str, str], make_database: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Identity]:
    """Identity without a running mail sender: the test drives delivery passes itself."""
    settings, key, previous = identity_settings(make_database, tmp_path_factory.mktemp("keys"))
    async with running_identity(settings, key, previous, send_mail=False) as running:
        yield running


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_failed_delivery_is_retried_and_never_blocks_the_request(quiet_identity: Identity) -> None:
    identity = quiet_identity
    email = new_email("retry")
    user_id = await identity.register(email)

    # SMTP is unreachable: the request does not care, the message waits in outbound_mail.
    r = await identity.client.post(f"{API}/auth/password-reset", json={"email": email})
    assert r.status_code == 202
    down = MailSender(
        identity.harness.pool,
        identity.settings.model_copy(update={"smtp_port": closed_port(), "mail_send_attempts_per_pass": 2}),
    )
    assert await down.send_due() == 1
    rows = await identity.harness.fetch(
        "SELECT attempts, sent_at, failed_at, last_error IS NOT NULL, next_attempt_at > now(), text_body <> ''"
        " FROM outbound_mail WHERE user_id = %s",
        (user_id,),
    )
    assert rows == [(1, None, None, True, True, True)]
    assert await down.send_due() == 0  # backing off: not due yet

    # Once its backoff is over and SMTP is back, it is delivered, once; the link's body is erased.
    await identity.harness.fetch(
        "UPDATE outbound_mail SET next_attempt_at = now() WHERE user_id = %s RETURNING 1", (user_id,)
    )
    up = MailSender(identity.harness.pool, identity.settings)
    assert await up.send_due() == 1
    assert await up.send_due() == 0
    rows = await identity.harness.fetch(
        "SELECT attempts, sent_at IS NOT NULL, text_body, html_body FROM outbound_mail WHERE user_id = %s",
        (user_id,),
    )
    assert rows == [(2, True, "", "")]
    (message,) = await identity.mail_to(email)
    assert "reset-password?token=" in text_of(message)
    assert message["Message-ID"].endswith("@identity.lk-portal>")
    assert message["Auto-Submitted"] == "auto-generated"

    # A message that keeps failing is given up after mail_max_attempts passes.
    other = new_email("gives-up")
    other_id = await identity.register(other)
    assert (
        await identity.client.post(f"{API}/auth/password-reset", json={"email": other})
    ).status_code == 202
    hopeless = MailSender(
        identity.harness.pool,
        identity.settings.model_copy(
            update={"smtp_port": closed_port(), "mail_send_attempts_per_pass": 1, "mail_max_attempts": 2}
        ),
    )
    for _ in range(2):
        assert await hopeless.send_due() == 1
        await identity.harness.fetch(
            "UPDATE outbound_mail SET next_attempt_at = now() WHERE user_id = %s RETURNING 1", (other_id,)
        )
    assert await hopeless.send_due() == 0
    rows = await identity.harness.fetch(
        "SELECT attempts, sent_at, failed_at IS NOT NULL FROM outbound_mail WHERE user_id = %s", (other_id,)
    )
    assert rows == [(2, None, True)]
