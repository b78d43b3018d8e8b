"""Delivers e-bills (`ebill_deliveries`) through SMTP with the bill's PDF attached: the worker's mail loop.

A pass claims due deliveries (`FOR UPDATE SKIP LOCKED` plus a lease in `locked_until`, so two workers
never take the same one) whose bill's PDF isn't still queued for the renderer (`pdf_renders`, where such
bills go first; the renderer wakes this loop when it stores the PDF; after `ebill_render_wait_s`, or if
that render failed, the sender renders the bill itself, through the same code). It attaches the stored
PDF, sends each with a few immediate retries, then, in one transaction, marks it `sent_at` and appends
EBillSent to the bill's stream. A failed pass reschedules it with exponential
backoff (`next_attempt_at`, `last_error`); after `ebill_max_attempts` it is marked `failed_at`.

A delivery row exists once per bill and address (UNIQUE), and a sent one is never claimed again, so
redelivered events cannot make a second e-mail. The one window left: a worker that dies between the
SMTP server's "250 OK" and the commit of `sent_at` sends again when the lease runs out (at-least-once
there); the Message-ID is the same (`message_id_for`), so mail clients show one message.

The loop wakes on `NOTIFY ebill_deliveries` (a trigger on insert) and polls every `ebill_poll_interval_s`.
The loop, the SMTP sending and the backoff are `service_runtime.mail`'s; the SQL is this table's.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from email.message import EmailMessage

from prometheus_client import Counter
from psycopg_pool import AsyncConnectionPool

from contracts.events.receipts import EBillSent, receipt_stream
from receipts.adapters.pdfs import pdf_for
from receipts.adapters.read_models import snapshot_by_id
from receipts.domain.ebill_message import compose
from receipts.settings import ReceiptsSettings
from service_runtime.db import Connection
from service_runtime.eventstore import ConcurrencyError, EventStore, NewEvent
from service_runtime.mail import Backoff, OutboxLoop, outbox_message, send_with_retries

log = logging.getLogger(__name__)

EBILLS_SENT = Counter("receipts_ebills_sent_total", "E-bills delivered to SMTP")
EBILL_FAILURES = Counter("receipts_ebill_failures_total", "Failed e-bill delivery passes")

_CLAIM_SQL = """
UPDATE ebill_deliveries SET attempts = attempts + 1, locked_until = now() + make_interval(secs => %s)
WHERE delivery_id IN (
    SELECT delivery_id FROM ebill_deliveries
    WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= now()
      AND (locked_until IS NULL OR locked_until < now())
      AND NOT EXISTS (  -- the bill's PDF is being rendered at issue time: wait for it, within reason
          SELECT 1 FROM pdf_renders r WHERE r.receipt_id = ebill_deliveries.receipt_id
          AND r.failed_at IS NULL AND r.queued_at > now() - make_interval(secs => %s))
    ORDER BY next_attempt_at, delivery_id
    LIMIT %s
    FOR UPDATE SKIP LOCKED
)
RETURNING delivery_id, receipt_id, email, language, message_id, attempts
"""


@dataclass(frozen=True, slots=True)
class _Due:
    delivery_id: int
    receipt_id: uuid.UUID
    email: str
    language: str
    message_id: str
    attempts: int


class EBillSender(OutboxLoop):
    def __init__(
        self, pool: AsyncConnectionPool[Connection], settings: ReceiptsSettings, store: EventStore
    ) -> None:
        super().__init__(
            dsn=settings.dsn,
            channel="ebill_deliveries",
            poll_interval_s=settings.ebill_poll_interval_s,
            name="e-bill",
            logger=log,
        )
        self._pool = pool
        self._settings = settings
        self._store = store
        self._backoff = Backoff(
            settings.ebill_backoff_base_s, settings.ebill_backoff_max_s, settings.ebill_max_attempts
        )

    async def send_due(self) -> int:
        """One pass: claim due deliveries and try each. Returns how many were claimed."""
        s = self._settings
        async with self._pool.connection() as conn:
            cur = await conn.execute(_CLAIM_SQL, (s.ebill_lease_s, s.ebill_render_wait_s, s.ebill_batch_size))
            due = [_Due(*row) for row in await cur.fetchall()]
        for delivery in due:
            await self._deliver(delivery)
        return len(due)

    async def _deliver(self, delivery: _Due) -> None:
        async with self._pool.connection() as conn:
            snapshot = await snapshot_by_id(conn, delivery.receipt_id)
        if snapshot is None:  # cannot happen (foreign key); keep the row for inspection
            await self._failed(delivery, LookupError("bill not found"), give_up=True)
            return
        try:
            pdf = await pdf_for(self._pool, delivery.receipt_id, snapshot)
            await send_with_retries(self._message(delivery, snapshot, pdf), self._settings, attempts=3)
        except Exception as exc:
            await self._failed(delivery, exc)
            return
        await self._mark_sent(delivery, snapshot)
        EBILLS_SENT.inc()
        log.info("e-bill sent", extra={"receipt_id": str(delivery.receipt_id), "attempts": delivery.attempts})

    async def _mark_sent(self, delivery: _Due, snapshot: dict[str, object]) -> None:
        account_no, period = str(snapshot["account_no"]), str(snapshot["period"])
        stream = receipt_stream(account_no, period)
        event = EBillSent(
            receipt_id=delivery.receipt_id,
            account_no=account_no,
            period=period,
            email=delivery.email,
            message_id=delivery.message_id,
        )
        for _ in range(10):
            try:
                async with self._pool.connection() as conn, conn.transaction():
                    cur = await conn.execute(
                        "UPDATE ebill_deliveries SET sent_at = now(), locked_until = NULL, last_error = NULL"
                        " WHERE delivery_id = %s AND sent_at IS NULL RETURNING 1",
                        (delivery.delivery_id,),
                    )
                    if await cur.fetchone() is None:
                        return
                    await self._store.append(
                        conn,
                        stream,
                        await self._store.stream_version(conn, stream),
                        [
                            NewEvent(
                                event, event_id=uuid.uuid5(delivery.receipt_id, f"EBillSent:{delivery.email}")
                            )
                        ],
                    )
                return
            except ConcurrencyError:
                continue
        raise RuntimeError(f"could not record EBillSent on {stream}")

    async def _failed(self, delivery: _Due, exc: BaseException, *, give_up: bool = False) -> None:
        delay, exhausted = self._backoff.after(delivery.attempts)
        give_up = give_up or exhausted
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE ebill_deliveries SET locked_until = NULL, last_error = %s,"
                " next_attempt_at = now() + make_interval(secs => %s),"
                " failed_at = CASE WHEN %s THEN now() END WHERE delivery_id = %s",
                (repr(exc)[:500], delay, give_up, delivery.delivery_id),
            )
        EBILL_FAILURES.inc()
        log.warning(
            "e-bill delivery failed" + ("; giving up" if give_up else "; will retry"),
            extra={"receipt_id": str(delivery.receipt_id), "attempts": delivery.attempts, "error": repr(exc)},
        )

    def _message(self, delivery: _Due, snapshot: dict[str, object], pdf: bytes) -> EmailMessage:
        text = compose(snapshot, delivery.language)
        message = outbox_message(
            sender=self._settings.mail_from,
            to=delivery.email,
            subject=text.subject,
            message_id=delivery.message_id,
            kind="ebill",
        )
        message.set_content(text.body)
        message.add_attachment(pdf, maintype="application", subtype="pdf", filename=text.attachment_name)
        message["Content-Language"] = delivery.language
        return message
