"""Issuing bills: when an account's period is billed and all of it has arrived, freeze the bill.

Called by the projections at the end of each batch, inside the batch's transaction, for the accounts the
batch touched. The accounts, ledger and calculator projections run as separate consumers (separate
transactions), so the last of the inputs may arrive in any of them: each takes a transaction-scoped
advisory lock per account (in sorted order, so two batches never deadlock) before it checks. Whichever
commits first releases the lock only at its commit, so the one that checks second always sees the
other's rows, and the bill is issued exactly once.

Issuing writes, in that same transaction: the `receipts` row (the snapshot and its SHA-256), one
`ebill_deliveries` row per subscribed address (UNIQUE per bill and address), the bill's PDF in the render
queue (`pdf_renders`, ahead of the others if it is to be mailed: the worker's renderer renders it right
after, never in this transaction), and ReceiptIssued on `receipt:{no}:{period}`. The bill's and the
event's ids are derived from the account and period, so issuing again is impossible and a redelivered
PeriodBilled changes nothing.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal

import orjson

from contracts.events.receipts import ReceiptIssued, receipt_stream
from receipts.adapters import read_models
from receipts.adapters.pdfs import queue_render
from receipts.domain.bill import build_snapshot, content_hash
from service_runtime.db import Connection
from service_runtime.eventstore import ConcurrencyError, EventStore, NewEvent

log = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("5f0d3f0e-8b7a-4c5e-9a55-2a4f1b7c9e01")


def receipt_id_for(account_no: str, period: str) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, f"receipt:{account_no}:{period}")


def message_id_for(receipt_id: uuid.UUID, email: str) -> str:
    """A stable Message-ID per bill and address: a retried send is recognisably the same message."""
    digest = hashlib.sha256(email.lower().encode()).hexdigest()[:16]
    return f"<ebill.{receipt_id}.{digest}@receipts.lk>"


async def lock_accounts(conn: Connection, account_nos: Iterable[str]) -> None:
    for account_no in sorted(set(account_nos)):
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"receipts.issue:{account_no}",)
        )


async def issue_ready_bills(
    conn: Connection, store: EventStore, account_nos: Iterable[str]
) -> list[uuid.UUID]:
    """Issue every billed, complete, not yet issued period of these accounts; return the new bills' ids."""
    accounts = sorted(set(account_nos))
    if not accounts:
        return []
    await lock_accounts(conn, accounts)
    issued: list[uuid.UUID] = []
    for account_no, period, charge_ids in await read_models.pending_billed_periods(conn, accounts):
        if not await read_models.is_ready(conn, account_no, charge_ids):
            continue
        receipt_id = await issue_bill(conn, store, account_no, period, charge_ids)
        if receipt_id is not None:
            issued.append(receipt_id)
    return issued


async def issue_bill(
    conn: Connection, store: EventStore, account_no: str, period: str, charge_ids: list[str]
) -> uuid.UUID | None:
    receipt_id = receipt_id_for(account_no, period)
    issued_at = datetime.now(UTC).replace(microsecond=0)
    facts = await read_models.load_bill_facts(
        conn, account_no, period, charge_ids, receipt_id=receipt_id, issued_at=issued_at
    )
    if facts is None:
        return None
    snapshot = build_snapshot(facts)
    digest = content_hash(snapshot)
    amount_due = Decimal(snapshot["amount_due"])
    overpayment = Decimal(snapshot["overpayment"])
    due = date.fromisoformat(snapshot["due_date"])
    try:
        async with conn.transaction():
            cur = await conn.execute(
                "INSERT INTO receipts (receipt_id, account_no, period, amount_due, overpayment, due_date,"
                " issued_at, snapshot, content_hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s)"
                " ON CONFLICT DO NOTHING RETURNING receipt_id",
                (
                    receipt_id,
                    account_no,
                    period,
                    amount_due,
                    overpayment,
                    due,
                    issued_at,
                    orjson.dumps(snapshot).decode(),
                    digest,
                ),
            )
            if await cur.fetchone() is None:
                return None  # issued already
            mailed = await _queue_deliveries(conn, receipt_id, account_no)
            await queue_render(conn, receipt_id, urgent=mailed > 0)
            await store.append(
                conn,
                receipt_stream(account_no, period),
                0,
                [
                    NewEvent(
                        ReceiptIssued(
                            receipt_id=receipt_id,
                            account_no=account_no,
                            period=period,
                            amount_due=amount_due,
                            overpayment=overpayment,
                            due_date=due,
                            content_hash=digest,
                        ),
                        event_id=uuid.uuid5(_NAMESPACE, f"ReceiptIssued:{receipt_id}"),
                        occurred_at=issued_at,
                    )
                ],
            )
    except ConcurrencyError:
        log.warning("bill already issued", extra={"account_no": account_no, "period": period})
        return None
    log.info("bill issued", extra={"account_no": account_no, "period": period, "receipt_id": str(receipt_id)})
    return receipt_id


async def _queue_deliveries(conn: Connection, receipt_id: uuid.UUID, account_no: str) -> int:
    """One delivery per subscribed address of a user who still has the account linked; how many."""
    cur = await conn.execute(
        "SELECT s.email, s.language FROM ebill_subscriptions s JOIN account_links l"
        " ON l.account_no = s.account_no AND l.user_id = s.user_id AND l.linked"
        " WHERE s.account_no = %s ORDER BY s.subscribed_at",
        (account_no,),
    )
    rows = [
        (receipt_id, email, language, message_id_for(receipt_id, email))
        for email, language in await cur.fetchall()
    ]
    if rows:
        async with conn.cursor() as c:
            await c.executemany(
                "INSERT INTO ebill_deliveries (receipt_id, email, language, message_id) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (receipt_id, email) DO NOTHING",
                rows,
            )
    return len(rows)
