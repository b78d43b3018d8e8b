"""Delivers `outbound_mail` through SMTP (aiosmtplib): the identity worker's mail loop.

A pass claims due messages (`FOR UPDATE SKIP LOCKED`, with a lease in `locked_until`, so two workers
never take the same one), sends each with a few immediate retries (tenacity), and then marks it:
`sent_at` on success (it is never sent again), or `next_attempt_at` with exponential backoff and
`last_error` on failure; after `mail_max_attempts` passes the message is marked `failed_at`.
A worker that dies between the SMTP "250 OK" and the mark would send that message again when the lease
runs out (at-least-once; the `Message-ID` stays the same, so mail clients show it once).
Messages with a live token (`sensitive`) get their bodies erased once delivered.

The loop wakes on `NOTIFY outbound_mail` (a trigger on insert) and polls every `mail_poll_interval_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import aiosmtplib
from prometheus_client import Counter
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from contracts.envelope import utc_now
from identity.settings import IdentitySettings
from service_runtime.db import Connection

log = logging.getLogger(__name__)

MAIL_SENT = Counter("identity_mail_sent_total", "Messages delivered to SMTP", ["kind"])
MAIL_FAILED = Counter("identity_mail_failures_total", "Failed delivery passes", ["kind"])

LEASE_S = 120
_RETRYABLE = (aiosmtplib.SMTPException, OSError, TimeoutError)

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


class MailSender:
    def __init__(self, pool: AsyncConnectionPool[Connection], settings: IdentitySettings) -> None:
        self._pool = pool
        self._settings = settings
        self._stopping = False
        self._wakeup = asyncio.Event()

    def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen())
        try:
            while not self._stopping:
                try:
                    sent = await self.send_due()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # PostgreSQL unavailable: keep trying
                    log.warning("mail sender pass failed", extra={"error": repr(exc)})
                    sent = 0
                if sent == 0:
                    self._wakeup.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), self._settings.mail_poll_interval_s)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

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
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self._settings.mail_send_attempts_per_pass),
                wait=wait_exponential(multiplier=0.2, max=2.0),
                retry=retry_if_exception_type(_RETRYABLE),
                reraise=True,
            ):
                with attempt:
                    await self._send(mail)
        except _RETRYABLE as exc:
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
        s = self._settings
        give_up = mail.attempts >= s.mail_max_attempts
        delay = min(s.mail_retry_base_s * 2 ** (mail.attempts - 1), s.mail_retry_max_s)
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
        message = EmailMessage()
        message["From"] = self._settings.mail_from
        message["To"] = mail.to
        message["Subject"] = mail.subject
        message["Date"] = format_datetime(utc_now())
        # Stable across retries, so a message delivered twice is recognisably the same one.
        message["Message-ID"] = f"<{mail.mail_id.hex}@identity.lk-portal>"
        message["Auto-Submitted"] = "auto-generated"
        message["X-LK-Mail-Kind"] = mail.kind
        message.set_content(mail.text)
        message.add_alternative(mail.html, subtype="html")
        message["Content-Language"] = mail.language  # after set_content(), which drops Content-* headers
        return message

    async def _send(self, mail: _Due) -> None:
        s = self._settings
        await aiosmtplib.send(
            self._message(mail),
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            use_tls=s.smtp_use_tls,
            start_tls=s.smtp_start_tls,
            timeout=s.smtp_timeout_s,
        )

    async def _listen(self) -> None:
        while not self._stopping:
            try:
                conn = await AsyncConnection.connect(self._settings.dsn, autocommit=True)
                async with conn:
                    await conn.execute("LISTEN outbound_mail")
                    async for _ in conn.notifies():
                        self._wakeup.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(1.0)
