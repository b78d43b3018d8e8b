"""Stored PDFs (`receipt_pdfs`, by receipt id and template version) and the queue of renders (`pdf_renders`).

A bill's PDF is rendered once, when it is issued: the issuing transaction queues it (`queue_render`) and
the worker's renderer (`adapters/pdf_renderer.py`) renders and stores it. From then on a download or an
e-mail is a read. A bill whose PDF isn't there yet (still queued, its render failed, or the template
version changed since) is rendered on demand by whoever needs it, through the same `render_pdf` and the
same `store_pdf`, which also takes the bill off the queue. Two renders of one bill racing both render; the
first insert wins (same snapshot, same template: the same bytes).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from psycopg_pool import AsyncConnectionPool

from receipts.adapters.rendering import TEMPLATE_VERSION, count_printed, render_pdf_async
from service_runtime.db import Connection


async def stored_pdf(conn: Connection, receipt_id: uuid.UUID) -> bytes | None:
    cur = await conn.execute(
        "SELECT pdf FROM receipt_pdfs WHERE receipt_id = %s AND template_version = %s",
        (receipt_id, TEMPLATE_VERSION),
    )
    row = await cur.fetchone()
    return bytes(row[0]) if row else None


async def queue_render(conn: Connection, receipt_id: uuid.UUID, *, urgent: bool = False) -> None:
    """Queue the bill's PDF for the renderer (in the caller's transaction, e.g. the one issuing it);
    `urgent` (an e-bill waits for it) puts it before the others."""
    await conn.execute(
        "INSERT INTO pdf_renders (receipt_id, priority) VALUES (%s, %s) ON CONFLICT (receipt_id) DO NOTHING",
        (receipt_id, 1 if urgent else 0),
    )


async def queue_missing_renders(conn: Connection, since_period: str | None = None) -> int:
    """Queue every bill (of `since_period` and later) without a PDF of the current template version."""
    cur = await conn.execute(
        "INSERT INTO pdf_renders (receipt_id) SELECT r.receipt_id FROM receipts r"
        " WHERE (%s::text IS NULL OR r.period >= %s::text) AND NOT EXISTS (SELECT 1 FROM receipt_pdfs p"
        "  WHERE p.receipt_id = r.receipt_id AND p.template_version = %s)"
        " ON CONFLICT (receipt_id) DO NOTHING",
        (since_period, since_period, TEMPLATE_VERSION),
    )
    return cur.rowcount


async def store_pdf(conn: Connection, receipt_id: uuid.UUID, pdf: bytes) -> bytes:
    """Store a rendered PDF (the first one stored wins) and take the bill off the render queue; wake the
    e-bill sender if a delivery of the bill was waiting for it. Returns the stored PDF."""
    async with conn.transaction():
        cur = await conn.execute(
            "INSERT INTO receipt_pdfs (receipt_id, template_version, pdf) VALUES (%s, %s, %s)"
            " ON CONFLICT (receipt_id, template_version) DO UPDATE SET pdf = receipt_pdfs.pdf RETURNING pdf",
            (receipt_id, TEMPLATE_VERSION, pdf),
        )
        row = await cur.fetchone()
        await conn.execute("DELETE FROM pdf_renders WHERE receipt_id = %s", (receipt_id,))
        await conn.execute(
            "SELECT pg_notify('ebill_deliveries', '') WHERE EXISTS (SELECT 1 FROM ebill_deliveries"
            " WHERE receipt_id = %s AND sent_at IS NULL AND failed_at IS NULL)",
            (receipt_id,),
        )
    return bytes(row[0]) if row else pdf


async def store_pdfs(conn: Connection, pdfs: Sequence[tuple[uuid.UUID, bytes]]) -> None:
    """`store_pdf` for several bills in one transaction (the renderer's batch): each stored unless one is
    already (the first one stored wins), all taken off the queue, the e-bill sender woken if a delivery of
    any of them was waiting."""
    ids = [receipt_id for receipt_id, _ in pdfs]
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO receipt_pdfs (receipt_id, template_version, pdf)"
            " SELECT id, %s, pdf FROM unnest(%s::uuid[], %s::bytea[]) AS t(id, pdf)"
            " ON CONFLICT (receipt_id, template_version) DO NOTHING",
            (TEMPLATE_VERSION, ids, [pdf for _, pdf in pdfs]),
        )
        await conn.execute("DELETE FROM pdf_renders WHERE receipt_id = ANY(%s)", (ids,))
        await conn.execute(
            "SELECT pg_notify('ebill_deliveries', '') WHERE EXISTS (SELECT 1 FROM ebill_deliveries"
            " WHERE receipt_id = ANY(%s) AND sent_at IS NULL AND failed_at IS NULL)",
            (ids,),
        )


async def pdf_for(
    pool: AsyncConnectionPool[Connection], receipt_id: uuid.UUID, snapshot: Mapping[str, Any]
) -> bytes:
    """The bill's PDF: the stored one, or rendered now and stored (no connection is held while rendering)."""
    async with pool.connection() as conn:
        stored = await stored_pdf(conn, receipt_id)
    if stored is not None:
        return stored
    pdf = await render_pdf_async(snapshot)
    count_printed([pdf])
    async with pool.connection() as conn:
        return await store_pdf(conn, receipt_id, pdf)
