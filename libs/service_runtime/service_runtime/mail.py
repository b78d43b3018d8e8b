"""Sending mail from an outbox table through SMTP (aiosmtplib): the parts every service's sender shares.

A service keeps its messages in its own table (identity's `outbound_mail`, receipts'
`ebill_deliveries`) and owns its SQL: how a pass claims due rows (`FOR UPDATE SKIP LOCKED` plus a
lease), how it marks one sent or failed. What is the same everywhere is here:

- `OutboxLoop`: runs the service's `send_due()` passes until stopped; after an empty (or failed) pass
  it sleeps until `NOTIFY <channel>` (a trigger on insert) or the poll interval, whichever is first;
- `outbox_message`: the headers of an automatic message (a stable `Message-ID`, so a message sent
  twice, at-least-once, shows once in mail clients);
- `send_with_retries`: one message, with a few immediate retries of what may pass (SMTP errors,
  connection errors, timeouts), through the service's `smtp_*` settings;
- `Backoff`: when a failed message is due again (exponential, capped) and when to give up.

aiosmtplib is a dependency of the services that import this module (identity, receipts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Protocol

import aiosmtplib
from psycopg import AsyncConnection, sql
from pydantic import SecretStr
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from contracts.envelope import utc_now

log = logging.getLogger(__name__)

# What a later attempt may get through.
RETRYABLE: tuple[type[BaseException], ...] = (aiosmtplib.SMTPException, OSError, TimeoutError)


class SmtpSettings(Protocol):
    """The SMTP part of a service's settings."""

    @property
    def smtp_host(self) -> str: ...
    @property
    def smtp_port(self) -> int: ...
    @property
    def smtp_username(self) -> str | None: ...
    @property
    def smtp_password(self) -> SecretStr | None: ...
    @property
    def smtp_use_tls(self) -> bool: ...  # implicit TLS (port 465)
    @property
    def smtp_start_tls(self) -> bool | None: ...  # None: STARTTLS when the server offers it
    @property
    def smtp_timeout_s(self) -> float: ...


def outbox_message(*, sender: str, to: str, subject: str, message_id: str, kind: str) -> EmailMessage:
    """An automatic message's headers; the caller sets its content (then `Content-Language`, which
    `set_content()` would drop)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(utc_now())
    # Stable across retries, so a message delivered twice is recognisably the same one.
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message["X-LK-Mail-Kind"] = kind
    return message


async def smtp_send(message: EmailMessage, smtp: SmtpSettings) -> None:
    await aiosmtplib.send(
        message,
        hostname=smtp.smtp_host,
        port=smtp.smtp_port,
        username=smtp.smtp_username,
        password=smtp.smtp_password.get_secret_value() if smtp.smtp_password else None,
        use_tls=smtp.smtp_use_tls,
        start_tls=smtp.smtp_start_tls,
        timeout=smtp.smtp_timeout_s,
    )


async def send_with_retries(message: EmailMessage, smtp: SmtpSettings, *, attempts: int) -> None:
    """Send, retrying `RETRYABLE` failures at once (0.2 s, 0.4 s, ... at most 2 s apart) up to
    `attempts` tries in all; the last failure is raised."""
    async for attempt in AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=0.2, max=2.0),
        retry=retry_if_exception_type(RETRYABLE),
        reraise=True,
    ):
        with attempt:
            await smtp_send(message, smtp)


@dataclass(frozen=True, slots=True)
class Backoff:
    """The schedule of a message's failed passes: `base_s`, twice that, ... at most `max_s` apart;
    after `max_attempts` passes it is given up."""

    base_s: float
    max_s: float
    max_attempts: int

    def after(self, attempts: int) -> tuple[float, bool]:
        """(seconds until the next pass, whether to give up) after `attempts` failed passes."""
        delay = min(self.base_s * 2 ** (attempts - 1), self.max_s)
        return delay, attempts >= self.max_attempts


class OutboxLoop:
    """A sender's loop: `send_due()` passes (returning how many rows they claimed) until `stop()`.

    After a pass that claimed nothing, or failed (PostgreSQL unavailable, say: it keeps trying), it
    waits for `NOTIFY <channel>` or `poll_interval_s`, whichever comes first.
    """

    def __init__(
        self, *, dsn: str, channel: str, poll_interval_s: float, name: str, logger: logging.Logger = log
    ) -> None:
        self._log = logger
        self._dsn = dsn
        self._channel = channel
        self._poll_interval_s = poll_interval_s
        self._name = name
        self._stopping = False
        self._wakeup = asyncio.Event()

    def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()

    async def send_due(self) -> int:
        raise NotImplementedError

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen())
        try:
            while not self._stopping:
                try:
                    claimed = await self.send_due()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # PostgreSQL unavailable, say: keep trying
                    self._log.warning(f"{self._name} pass failed", extra={"error": repr(exc)})
                    claimed = 0
                if claimed == 0:
                    self._wakeup.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), self._poll_interval_s)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def _listen(self) -> None:
        while not self._stopping:
            try:
                conn = await AsyncConnection.connect(self._dsn, autocommit=True)
                async with conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    async for _ in conn.notifies():
                        self._wakeup.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(1.0)
