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
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal

import orjson

from contracts.events.receipts import ReceiptIssued, receipt_stream
from receipts.adapters import read_models
from receipts.adapters.bulk_append import append_new_streams
from receipts.domain.bill import build_snapshot, content_hash
from service_runtime.db import Connection
from service_runtime.eventstore import EventStore, NewEvent

log = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("5f0d3f0e-8b7a-4c5e-9a55-2a4f1b7c9e01")


def receipt_id_for(account_no: str, period: str) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, f"receipt:{account_no}:{period}")


def message_id_for(receipt_id: uuid.UUID, email: str) -> str:
    """A stable Message-ID per bill and address: a retried send is recognisably the same message."""
    digest = hashlib.sha256(email.lower().encode()).hexdigest()[:16]
    return f"<ebill.{receipt_id}.{digest}@receipts.lk>"


async def lock_accounts(conn: Connection, account_nos: Iterable[str]) -> None:
    """The accounts' issuing locks, in sorted order (so two batches never deadlock), in one statement."""
    keys = [f"receipts.issue:{account_no}" for account_no in sorted(set(account_nos))]
    if not keys:
        return
    await conn.execute(
        "SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0)))"
        " FROM (SELECT k FROM unnest(%b::text[]) WITH ORDINALITY AS u(k, n) ORDER BY n) AS s",
        (keys,),
    )


async def issue_ready_bills(
    conn: Connection, store: EventStore, account_nos: Iterable[str]
) -> list[uuid.UUID]:
    """Issue every billed, complete, not yet issued period of these accounts; return the new bills' ids."""
    accounts = sorted(set(account_nos))
    if not accounts:
        return []
    await lock_accounts(conn, accounts)
    ready = await read_models.ready_billed_periods(conn, accounts)
    if not ready:
        return []
    return await issue_bills(conn, store, ready)


async def issue_bills(
    conn: Connection, store: EventStore, bills: Sequence[read_models.BillKey]
) -> list[uuid.UUID]:
    """Issue these ready bills (the caller holds their accounts' locks) with a fixed number of statements
    whatever their number: their facts read at once (one pipelined round trip), the snapshots built, then
    one multi-row insert each of the bills, their e-bill deliveries, their render queue rows (`pdfs.
    queue_render`'s rows) and their ReceiptIssued. Returns the new bills' ids (a bill issued already, or
    whose stream has events already, is skipped: nothing is issued twice)."""
    issued_at = datetime.now(UTC).replace(microsecond=0)
    receipt_ids = [receipt_id_for(account_no, period) for account_no, period, _ in bills]
    all_facts = await read_models.load_many_bill_facts(
        conn, bills, receipt_ids=receipt_ids, issued_at=issued_at
    )
    streams = [receipt_stream(account_no, period) for account_no, period, _ in bills]
    cur = await conn.execute(
        "SELECT DISTINCT stream_id FROM events WHERE stream_id = ANY(%b::text[])", (streams,)
    )
    started = {str(row[0]) for row in await cur.fetchall()}
    rows: list[tuple[uuid.UUID, str, str, Decimal, Decimal, date, str, str]] = []
    for (account_no, period, _), receipt_id, facts, stream in zip(
        bills, receipt_ids, all_facts, streams, strict=True
    ):
        if facts is None:
            continue
        if stream in started:
            log.warning("bill already issued", extra={"account_no": account_no, "period": period})
            continue
        snapshot = build_snapshot(facts)
        rows.append(
            (
                receipt_id,
                account_no,
                period,
                Decimal(snapshot["amount_due"]),
                Decimal(snapshot["overpayment"]),
                date.fromisoformat(snapshot["due_date"]),
                orjson.dumps(snapshot).decode(),
                content_hash(snapshot),
            )
        )
    if not rows:
        return []
    cur = await conn.execute(
        "INSERT INTO receipts (receipt_id, account_no, period, amount_due, overpayment, due_date, issued_at,"
        " snapshot, content_hash) SELECT r, a, p, d, o, dd, %s, s::jsonb, h FROM unnest(%b::uuid[],"
        " %b::text[], %b::text[], %b::numeric[], %b::numeric[], %b::date[], %b::text[], %b::text[])"
        " AS k(r, a, p, d, o, dd, s, h) ON CONFLICT DO NOTHING RETURNING receipt_id",
        (issued_at, *(list(column) for column in zip(*rows, strict=True))),
    )
    inserted = {row[0] for row in await cur.fetchall()}
    new = [row for row in rows if row[0] in inserted]  # the others were issued already
    if not new:
        return []
    mailed = await _queue_many_deliveries(conn, {row[0]: row[1] for row in new})
    await conn.execute(
        "INSERT INTO pdf_renders (receipt_id, priority) SELECT * FROM unnest(%b::uuid[], %b::int[])"
        " ON CONFLICT (receipt_id) DO NOTHING",
        ([row[0] for row in new], [1 if row[0] in mailed else 0 for row in new]),
    )
    await append_new_streams(
        conn,
        store,
        [
            (
                receipt_stream(account_no, period),
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
                ),
            )
            for receipt_id, account_no, period, amount_due, overpayment, due, _, digest in new
        ],
    )
    log.info("bills issued", extra={"count": len(new)})
    return [row[0] for row in new]


async def _queue_many_deliveries(conn: Connection, bills: dict[uuid.UUID, str]) -> set[uuid.UUID]:
    """One delivery per subscribed address of a user who still has the account linked, for many bills
    (receipt id → account) in two statements; returns the bills to be mailed."""
    cur = await conn.execute(
        "SELECT s.account_no, s.email, s.language FROM ebill_subscriptions s JOIN account_links l"
        " ON l.account_no = s.account_no AND l.user_id = s.user_id AND l.linked"
        " WHERE s.account_no = ANY(%b::text[]) ORDER BY s.account_no, s.subscribed_at",
        (sorted(set(bills.values())),),
    )
    subscribed: dict[str, list[tuple[str, str]]] = {}
    for account_no, email, language in await cur.fetchall():
        subscribed.setdefault(account_no, []).append((email, language))
    rows = [
        (receipt_id, email, language, message_id_for(receipt_id, email))
        for receipt_id, account_no in bills.items()
        for email, language in subscribed.get(account_no, ())
    ]
    if rows:
        async with conn.cursor() as c:
            await c.executemany(
                "INSERT INTO ebill_deliveries (receipt_id, email, language, message_id) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (receipt_id, email) DO NOTHING",
                rows,
            )
    return {row[0] for row in rows}
