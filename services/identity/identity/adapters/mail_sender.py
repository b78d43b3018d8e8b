"""Delivers `outbound_mail` through SMTP (aiosmtplib): the identity worker's mail loop.

A pass claims due messages (`FOR UPDATE SKIP LOCKED`, with a lease in `locked_until`, so two workers
never take the same one), sends each with a few immediate retries (tenacity), and then marks it:
`sent_at` on success (it is never sent again), or `next_attempt_at` with exponential backoff and
`last_error` on failure; after `mail_max_attempts` passes the message is marked `failed_at`.
A worker that dies between the SMTP "250 OK" and the mark would send that message again when the lease
runs out (at-least-once; the `Message-ID` stays the same, so mail clients show it once).
Messages with a live token (`sensitive`) get their bodies erased once delivered.

The loop wakes on `NOTIFY outbound_mail` (a trigger on insert) and polls every `mail_poll_interval_s`.
The loop, the SMTP sending and the backoff are `service_runtime.mail`'s; the SQL is this table's.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from prometheus_client import Counter
from psycopg_pool import AsyncConnectionPool

from identity.settings import IdentitySettings
from service_runtime.db import Connection
from service_runtime.mail import RETRYABLE, Backoff, OutboxLoop, outbox_message, send_with_retries

log = logging.getLogger(__name__)

MAIL_SENT = Counter("identity_mail_sent_total", "Messages delivered to SMTP", ["kind"])
MAIL_FAILED = Counter("identity_mail_failures_total", "Failed delivery passes", ["kind"])

LEASE_S = 120

_CLAIM_SQL = """
UPDATE outbound_mail SET attempts = attempts + 1, locked_until = now() + make_interval(secs => %s)
WHERE mail_id IN (
    SELECT mail_id FROM outbound_mail
    WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= now()
      AND (locked_until IS NULL OR locked_until < now())
    ORDER BY next_attempt_at, created_at
    LIMIT %s
    FOR UPDATE SKIP LOCKED
)
RETURNING mail_id, kind, to_address, language, subject, text_body, html_body, sensitive, attempts, created_at
"""


@dataclass(frozen=True, slots=True)
class _Due:
    mail_id: uuid.UUID
    kind: str
    to: str
    language: str
    subject: str
    text: str
    html: str
    sensitive: bool
    attempts: int
    created_at: Any


class MailSender(OutboxLoop):
    def __init__(self, pool: AsyncConnectionPool[Connection], settings: IdentitySettings) -> None:
        super().__init__(
            dsn=settings.dsn,
            channel="outbound_mail",
            poll_interval_s=settings.mail_poll_interval_s,
            name="mail sender",
            logger=log,
        )
        self._pool = pool
        self._settings = settings
        self._backoff = Backoff(
            settings.mail_retry_base_s, settings.mail_retry_max_s, settings.mail_max_attempts
        )

    async def send_due(self) -> int:
        """One pass: claims due messages and tries each. Returns how many were claimed."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(_CLAIM_SQL, (LEASE_S, self._settings.mail_batch_size))
            due = [_Due(*row) for row in await cur.fetchall()]
        for mail in due:
            await self._deliver(mail)
        return len(due)

    async def _deliver(self, mail: _Due) -> None:
        try:
            await send_with_retries(
                self._message(mail), self._settings, attempts=self._settings.mail_send_attempts_per_pass
            )
        except RETRYABLE as exc:
            await self._failed(mail, exc)
            return
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE outbound_mail SET sent_at = now(), locked_until = NULL, last_error = NULL,"
                " text_body = CASE WHEN sensitive THEN '' ELSE text_body END,"
                " html_body = CASE WHEN sensitive THEN '' ELSE html_body END"
                " WHERE mail_id = %s",
                (mail.mail_id,),
            )
        MAIL_SENT.labels(mail.kind).inc()
        log.info(
            "mail sent", extra={"mail_id": str(mail.mail_id), "kind": mail.kind, "attempts": mail.attempts}
        )

    async def _failed(self, mail: _Due, exc: BaseException) -> None:
        delay, give_up = self._backoff.after(mail.attempts)
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE outbound_mail SET locked_until = NULL, last_error = %s,"
                " next_attempt_at = now() + make_interval(secs => %s),"
                " failed_at = CASE WHEN %s THEN now() END WHERE mail_id = %s",
                (repr(exc)[:500], delay, give_up, mail.mail_id),
            )
        MAIL_FAILED.labels(mail.kind).inc()
        log.warning(
            "mail delivery failed" + ("; giving up" if give_up else "; will retry"),
            extra={
                "mail_id": str(mail.mail_id),
                "kind": mail.kind,
                "attempts": mail.attempts,
                "error": repr(exc),
            },
        )

    def _message(self, mail: _Due) -> EmailMessage:
        message = outbox_message(
            sender=self._settings.mail_from,
            to=mail.to,
            subject=mail.subject,
            message_id=f"<{mail.mail_id.hex}@identity.lk-portal>",
            kind=mail.kind,
        )
        message.set_content(mail.text)
        message.add_alternative(mail.html, subtype="html")
        message["Content-Language"] = mail.language  # after set_content(), which drops Content-* headers
        return message
