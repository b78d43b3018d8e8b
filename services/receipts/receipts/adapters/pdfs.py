"""Rendered PDFs, cached in `receipt_pdfs` by (receipt id, template version).

The first download (or e-mail) of a bill renders it from its snapshot and stores it; every later one is
a plain read. A new template version renders again, lazily. Two concurrent first renders both render,
and the first insert wins (same snapshot, same template: the same document).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from psycopg_pool import AsyncConnectionPool

from receipts.adapters.rendering import TEMPLATE_VERSION, render_pdf_async
from service_runtime.db import Connection


async def cached_pdf(conn: Connection, receipt_id: uuid.UUID) -> bytes | None:
    cur = await conn.execute(
        "SELECT pdf FROM receipt_pdfs WHERE receipt_id = %s AND template_version = %s",
        (receipt_id, TEMPLATE_VERSION),
    )
    row = await cur.fetchone()
    return bytes(row[0]) if row else None


async def pdf_for(
    pool: AsyncConnectionPool[Connection], receipt_id: uuid.UUID, snapshot: Mapping[str, Any]
) -> bytes:
    """The bill's PDF: from the cache, or rendered now (no connection is held while rendering)."""
    async with pool.connection() as conn:
        cached = await cached_pdf(conn, receipt_id)
    if cached is not None:
        return cached
    pdf = await render_pdf_async(snapshot)
    async with pool.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO receipt_pdfs (receipt_id, template_version, pdf) VALUES (%s, %s, %s)"
            " ON CONFLICT (receipt_id, template_version) DO UPDATE SET pdf = receipt_pdfs.pdf RETURNING pdf",
            (receipt_id, TEMPLATE_VERSION, pdf),
        )
        row = await cur.fetchone()
    return bytes(row[0]) if row else pdf
