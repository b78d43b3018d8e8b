"""Renders the PDFs of issued bills (`pdf_renders`) and stores them: the worker's render loop.

Issuing a bill queues its PDF in the issuing transaction (`pdfs.queue_render`); this loop renders it right
after, outside any consumer's transaction, so event ingestion never waits for WeasyPrint. A download or an
e-mail then reads the stored PDF.

- `render_processes` slots (at least one) each claim one queued bill at a time (`FOR UPDATE SKIP LOCKED`
  plus a lease in `locked_until`, so several workers share the queue and a dead one's claims come back;
  bills with e-bills to send first, then the oldest),
  render it through `rendering.render_pdf` (Chromium, or WeasyPrint: `RECEIPTS_PDF_ENGINE`) and store it with `pdfs.store_pdf`, which takes it off the
  queue in the same transaction. With `render_processes` > 0 the renders run in that many worker
  processes (spawned, each with its own warm WeasyPrint: a render is CPU-bound Python, so processes are
  what use more than one core); with 0, in this process's render thread.
- A failed render is retried with exponential backoff, up to `render_max_attempts`, then marked
  `failed_at` (and logged); such a bill is still rendered on demand when it is downloaded or mailed.
- What runs is bounded: at most one render per slot is in flight, however long the queue. The backlog is
  rows in `pdf_renders`, never memory.
- The loop wakes on `NOTIFY pdf_renders` (a trigger on insert) and polls every `render_poll_interval_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Histogram
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from receipts.adapters import rendering
from receipts.adapters.pdfs import store_pdf
from receipts.adapters.rendering import TEMPLATE_VERSION
from receipts.settings import ReceiptsSettings
from service_runtime.db import Connection

log = logging.getLogger(__name__)

PDFS_RENDERED = Counter("receipts_pdfs_rendered_total", "Bills' PDFs rendered at issue time")
PDF_RENDER_FAILURES = Counter("receipts_pdf_render_failures_total", "Failed renders of bills' PDFs")
PDF_RENDER_SECONDS = Histogram(
    "receipts_pdf_render_seconds",
    "Wall time of one bill's render, queued to stored excluded",
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0),
)

Render = Callable[[Mapping[str, Any]], bytes]

# One queued bill: lease it, and bring its snapshot and whether its PDF is stored already (a render on
# demand got there first, or `render-backlog` queued a bill it needn't have).
_CLAIM_SQL = """
UPDATE pdf_renders q SET attempts = q.attempts + 1, locked_until = now() + make_interval(secs => %s)
FROM receipts r
WHERE r.receipt_id = q.receipt_id AND q.receipt_id = (
    SELECT receipt_id FROM pdf_renders
    WHERE failed_at IS NULL AND next_attempt_at <= now() AND (locked_until IS NULL OR locked_until < now())
    ORDER BY priority DESC, next_attempt_at, queued_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING q.receipt_id, q.attempts, r.snapshot, EXISTS (
    SELECT 1 FROM receipt_pdfs p WHERE p.receipt_id = q.receipt_id AND p.template_version = %s)
"""


@dataclass(frozen=True, slots=True)
class _Job:
    receipt_id: uuid.UUID
    attempts: int
    snapshot: dict[str, Any]
    stored: bool


class PdfRenderer:
    def __init__(
        self,
        pool: AsyncConnectionPool[Connection],
        settings: ReceiptsSettings,
        *,
        render: Render = rendering.render_pdf,
        processes: int | None = None,
    ) -> None:
        """`render` must be a module-level function (it is sent to the worker processes by name)."""
        self._pool = pool
        self._settings = settings
        self._render = render
        self._processes = settings.render_processes if processes is None else processes
        self._engine = rendering.config_from(settings)
        rendering.configure(self._engine)  # this process's renders (processes = 0) and on-demand ones
        self._executor: Executor | None = None
        self._stopping = False
        self._generation = 0  # bumped by every NOTIFY; an idle slot waits for it to move
        self._wake = asyncio.Event()

    @property
    def slots(self) -> int:
        return max(self._processes, 1)

    def stop(self) -> None:
        self._stopping = True
        self._bump()

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen())
        slots = [asyncio.create_task(self._slot()) for _ in range(self.slots)]
        try:
            await asyncio.gather(*slots)
        finally:
            for task in [*slots, listener]:
                task.cancel()
            for task in [*slots, listener]:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self.close()

    def close(self) -> None:
        if isinstance(self._executor, ProcessPoolExecutor):
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = None

    async def _slot(self) -> None:
        while not self._stopping:
            seen = self._generation
            try:
                rendered = await self.render_one()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # PostgreSQL unavailable, say: keep trying
                log.warning("pdf render pass failed", extra={"error": repr(exc)})
                rendered = False
            if not rendered:
                await self._idle(seen)

    async def render_one(self) -> bool:
        """Claim one queued bill, render and store its PDF. False when nothing was due."""
        s = self._settings
        async with self._pool.connection() as conn:
            cur = await conn.execute(_CLAIM_SQL, (s.render_lease_s, TEMPLATE_VERSION))
            row = await cur.fetchone()
        if row is None:
            return False
        job = _Job(*row)
        if job.stored:
            async with self._pool.connection() as conn:
                await conn.execute("DELETE FROM pdf_renders WHERE receipt_id = %s", (job.receipt_id,))
            return True
        started = time.perf_counter()
        try:
            pdf = await self._run_render(job.snapshot)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                raise  # this loop is stopping
            await self._failed(job, RuntimeError("render cancelled"))  # only the render was
            return True
        except Exception as exc:
            await self._failed(job, exc)
            return True
        PDF_RENDER_SECONDS.observe(time.perf_counter() - started)
        async with self._pool.connection() as conn:
            await store_pdf(conn, job.receipt_id, pdf)
        PDFS_RENDERED.inc()
        return True

    async def render_all(self) -> int:
        """Render until nothing is due (all slots at once); returns how many bills were taken."""
        done = 0

        async def drain() -> None:
            nonlocal done
            while await self.render_one():
                done += 1

        await asyncio.gather(*(drain() for _ in range(self.slots)))
        return done

    async def _run_render(self, snapshot: Mapping[str, Any]) -> bytes:
        loop = asyncio.get_running_loop()
        if self._processes == 0:
            return await loop.run_in_executor(rendering.render_executor(), self._render, snapshot)
        executor = self._process_pool()
        try:
            return await loop.run_in_executor(executor, self._render, snapshot)
        except BrokenProcessPool:
            # A render process died (killed, out of memory): this pool is done, the next render starts a
            # new one. (Only this pool: another slot may have started the next one already.)
            if self._executor is executor:
                self._executor = None
            executor.shutdown(wait=False)  # its other renders fail the same way, each retried
            raise

    def _process_pool(self) -> Executor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self._processes,
                mp_context=multiprocessing.get_context("spawn"),  # never fork a process with threads
                initializer=_start_render_process,
                initargs=(self._settings.render_niceness, self._engine),
            )
        return self._executor

    async def _failed(self, job: _Job, exc: BaseException) -> None:
        s = self._settings
        give_up = job.attempts >= s.render_max_attempts
        delay = min(s.render_backoff_base_s * 2 ** (job.attempts - 1), s.render_backoff_max_s)
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE pdf_renders SET locked_until = NULL, last_error = %s,"
                " next_attempt_at = now() + make_interval(secs => %s),"
                " failed_at = CASE WHEN %s THEN now() END WHERE receipt_id = %s",
                (repr(exc)[:500], delay, give_up, job.receipt_id),
            )
        PDF_RENDER_FAILURES.inc()
        log.warning(
            "pdf render failed" + ("; giving up" if give_up else "; will retry"),
            extra={"receipt_id": str(job.receipt_id), "attempts": job.attempts, "error": repr(exc)},
        )

    def _bump(self) -> None:
        self._generation += 1
        self._wake.set()
        self._wake = asyncio.Event()

    async def _idle(self, seen: int) -> None:
        """Wait for a NOTIFY since `seen` (at most the poll interval); none is lost between a slot's empty
        claim and its wait, as each bump wakes the waiters of the generation before it."""
        if self._generation != seen or self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._settings.render_poll_interval_s)

    async def _listen(self) -> None:
        while not self._stopping:
            try:
                conn = await AsyncConnection.connect(self._settings.dsn, autocommit=True)
                async with conn:
                    await conn.execute("LISTEN pdf_renders")
                    self._bump()  # anything queued while not listening
                    async for _ in conn.notifies():
                        self._bump()
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(1.0)


def _start_render_process(niceness: int, engine: rendering.EngineConfig) -> None:
    """A render process's initializer: lower its CPU priority (rendering ahead of downloads is background
    work; ingesting events and answering users come first; a Chromium started from here inherits it), set
    the engine and start it (the process's browser lives as long as the process; closed at its exit)."""
    if niceness:
        os.nice(niceness)
    rendering.configure(engine)
    rendering.warm_up()
