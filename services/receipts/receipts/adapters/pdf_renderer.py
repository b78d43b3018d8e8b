"""Renders the PDFs of issued bills (`pdf_renders`) and stores them: the worker's render loop.

Issuing a bill queues its PDF in the issuing transaction (`pdfs.queue_render`); this loop renders it right
after, outside any consumer's transaction, so event ingestion never waits for WeasyPrint. A download or an
e-mail then reads the stored PDF.

- `render_processes` slots (at least one) each claim up to `pdf_batch` queued bills at a time (`FOR UPDATE
  SKIP LOCKED` plus a lease in `locked_until`, so several workers share the queue and a dead one's claims
  come back; bills with e-bills to send first, then the oldest), send them to a render process in one call,
  `rendering.render_batch` (Chromium prints them as one document, split per bill and checked; a batch that
  fails a check is printed bill by bill; WeasyPrint prints each alone), and store every PDF and take the
  bills off the queue in one transaction (`pdfs.store_pdfs`). If the call fails as a whole (its process
  died), each bill is rendered alone, so one bad bill never fails the others. With `pdf_batch` = 1, one bill
  at a time through `rendering.render_pdf`. With `render_processes` > 0 the renders run in that many worker
  processes (spawned, each with its own warm engine, at `render_niceness`); with 0, in this process's
  render thread.
- A failed render is retried with exponential backoff, up to `render_max_attempts`, then marked
  `failed_at` (and logged); such a bill is still rendered on demand when it is downloaded or mailed.
- What runs is bounded: at most one batch per slot is in flight, however long the queue. The backlog is
  rows in `pdf_renders`, never memory.
- The loop wakes on `NOTIFY pdf_renders` (a trigger on insert) and polls every `render_poll_interval_s`.
- It yields to the rest of the machine (`render_yield_above_cores`, off by default; the local stack, one
  machine for everything, turns it on): before each batch, while others use more CPU than that, it waits,
  for at most `render_yield_max_s` a batch (so a backlog still drains under constant load).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus_client import Counter, Histogram
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from receipts.adapters import rendering
from receipts.adapters.machine_load import OthersLoad
from receipts.adapters.pdfs import store_pdfs
from receipts.adapters.rendering import TEMPLATE_VERSION
from receipts.settings import ReceiptsSettings
from service_runtime.db import Connection
from service_runtime.mail import Backoff
from service_runtime.scheduling import die_with_parent, lower_cpu_priority

log = logging.getLogger(__name__)

PDFS_RENDERED = Counter("receipts_pdfs_rendered_total", "Bills' PDFs rendered at issue time")
PDF_RENDER_FAILURES = Counter("receipts_pdf_render_failures_total", "Failed renders of bills' PDFs")
PDF_RENDER_SECONDS = Histogram(
    "receipts_pdf_render_seconds",
    "Wall time of one bill's render, queued to stored excluded",
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0),
)

RENDER_YIELDS = Counter(
    "receipts_pdf_render_yields_total",
    "Pauses of the renderer while the rest of the machine was busy (render_yield_above_cores)",
)
PDFS_BATCHED = Counter("receipts_pdfs_batched_total", "Bills' PDFs printed in a shared document and split")
PDF_BATCH_FALLBACKS = Counter(
    "receipts_pdf_batch_fallbacks_total",
    "Batches of bills printed one by one instead (a check or print failed)",
)

Render = Callable[[Mapping[str, Any]], bytes]
BatchRender = Callable[[Sequence[Mapping[str, Any]]], rendering.BatchResult]
T = TypeVar("T")

# Up to %s queued bills: lease them, and bring their snapshots and whether each PDF is stored already (a
# render on demand got there first, or `render-backlog` queued a bill it needn't have).
_CLAIM_SQL = """
UPDATE pdf_renders q SET attempts = q.attempts + 1, locked_until = now() + make_interval(secs => %s)
FROM receipts r
WHERE r.receipt_id = q.receipt_id AND q.receipt_id IN (
    SELECT receipt_id FROM pdf_renders
    WHERE failed_at IS NULL AND next_attempt_at <= now() AND (locked_until IS NULL OR locked_until < now())
    ORDER BY priority DESC, next_attempt_at, queued_at
    LIMIT %s
    FOR UPDATE SKIP LOCKED
)
RETURNING q.receipt_id, q.attempts, r.snapshot, EXISTS (
    SELECT 1 FROM receipt_pdfs p WHERE p.receipt_id = q.receipt_id AND p.template_version = %s),
    q.priority, q.queued_at
"""


@dataclass(frozen=True, slots=True)
class _Job:
    receipt_id: uuid.UUID
    attempts: int
    snapshot: dict[str, Any]
    stored: bool
    priority: int
    queued_at: Any


class PdfRenderer:
    def __init__(
        self,
        pool: AsyncConnectionPool[Connection],
        settings: ReceiptsSettings,
        *,
        render: Render = rendering.render_pdf,
        render_batch: BatchRender = rendering.render_batch,
        processes: int | None = None,
        batch: int | None = None,
        others_load: Callable[[], float] | None = None,
    ) -> None:
        """`render` (one bill) and `render_batch` (several) must be module-level functions (they are sent
        to the render processes by name). `batch`: bills claimed and rendered together (default
        `settings.pdf_batch`; 1: each alone, through `render`). `others_load`: the cores the rest of the
        machine uses (default: measured from /proc, `machine_load.OthersLoad`)."""
        self._pool = pool
        self._settings = settings
        self._backoff = Backoff(
            settings.render_backoff_base_s, settings.render_backoff_max_s, settings.render_max_attempts
        )
        self._render = render
        self._render_batch = render_batch
        self._processes = settings.render_processes if processes is None else processes
        self._batch = max(1, settings.pdf_batch if batch is None else batch)
        self._engine = rendering.config_from(settings)
        rendering.configure(self._engine)  # this process's renders (processes = 0) and on-demand ones
        self._others_load = others_load or OthersLoad().cores
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
                await self._yield_to_others()
                rendered = await self.render_one()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # PostgreSQL unavailable, say: keep trying
                log.warning("pdf render pass failed", extra={"error": repr(exc)})
                rendered = False
            if not rendered:
                await self._idle(seen)

    async def _yield_to_others(self) -> None:
        """While the rest of the machine uses more than `render_yield_above_cores`, wait (checking every
        `render_yield_check_s`, for at most `render_yield_max_s`): rendering ahead of downloads is
        background work, and a billing run or a burst of payments comes first. 0 cores: never wait."""
        s = self._settings
        waited = 0.0
        while (
            s.render_yield_above_cores > 0
            and not self._stopping
            and waited < s.render_yield_max_s
            and await asyncio.to_thread(self._others_load) > s.render_yield_above_cores
        ):
            RENDER_YIELDS.inc()
            await asyncio.sleep(s.render_yield_check_s)
            waited += s.render_yield_check_s

    async def render_one(self) -> bool:
        """Claim up to `batch` queued bills, render and store their PDFs. False when nothing was due."""
        return await self.render_next() > 0

    async def render_next(self) -> int:
        """Claim up to `batch` queued bills (e-bills first, then the oldest), render them (one call to a
        render process: `rendering.render_batch` prints them as one document and splits it), store every
        PDF and take the bills off the queue in one transaction; a bill that failed is retried alone
        (backoff, then `failed_at`). Returns how many bills were taken (0: nothing was due)."""
        s = self._settings
        async with self._pool.connection() as conn:
            cur = await conn.execute(_CLAIM_SQL, (s.render_lease_s, self._batch, TEMPLATE_VERSION))
            rows = await cur.fetchall()
        if not rows:
            return 0
        jobs = sorted(
            (_Job(*row) for row in rows), key=lambda j: (-j.priority, j.queued_at, str(j.receipt_id))
        )
        done = [j.receipt_id for j in jobs if j.stored]
        if done:
            async with self._pool.connection() as conn:
                await conn.execute("DELETE FROM pdf_renders WHERE receipt_id = ANY(%s)", (done,))
        todo = [j for j in jobs if not j.stored]
        if not todo:
            return len(jobs)
        started = time.perf_counter()
        if self._batch > 1 and len(todo) > 1:
            outcomes = await self._render_together(todo)
        else:
            outcomes = [await self._render_alone(job) for job in todo]
        elapsed = (time.perf_counter() - started) / len(todo)
        rendered = [
            (j.receipt_id, pdf) for j, pdf in zip(todo, outcomes, strict=True) if isinstance(pdf, bytes)
        ]
        rendering.count_printed(pdf for _, pdf in rendered)
        if rendered:
            async with self._pool.connection() as conn:
                await store_pdfs(conn, rendered)
            for _ in rendered:
                PDF_RENDER_SECONDS.observe(elapsed)
            PDFS_RENDERED.inc(len(rendered))
        for job, outcome in zip(todo, outcomes, strict=True):
            if not isinstance(outcome, bytes):
                await self._failed(job, outcome)
        return len(jobs)

    async def render_all(self) -> int:
        """Render until nothing is due (all slots at once); returns how many bills were taken."""
        done = 0

        async def drain() -> None:
            nonlocal done
            while taken := await self.render_next():
                done += taken

        await asyncio.gather(*(drain() for _ in range(self.slots)))
        return done

    async def _render_together(self, jobs: list[_Job]) -> list[bytes | BaseException]:
        """The bills in one call to a render process; if that call fails as a whole (its process died,
        say), each bill alone, so one bad bill can't fail the others."""
        try:
            result: rendering.BatchResult = await self._run(self._render_batch, [j.snapshot for j in jobs])
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                raise  # this loop is stopping
            return [RuntimeError("render cancelled") for _ in jobs]  # only the render was
        except Exception as exc:
            PDF_BATCH_FALLBACKS.inc()
            log.warning(
                "a batch of renders failed; rendering its bills one by one",
                extra={"bills": len(jobs), "error": repr(exc)},
            )
            return [await self._render_alone(job) for job in jobs]
        PDFS_BATCHED.inc(result.batched)
        if result.fallbacks:
            PDF_BATCH_FALLBACKS.inc(result.fallbacks)
        return list(result.pdfs)

    async def _render_alone(self, job: _Job) -> bytes | BaseException:
        try:
            pdf: bytes = await self._run(self._render, job.snapshot)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                raise  # this loop is stopping
            return RuntimeError("render cancelled")  # only the render was
        except Exception as exc:
            return exc
        return pdf

    async def _run(self, fn: Callable[[Any], T], arg: Any) -> T:
        loop = asyncio.get_running_loop()
        if self._processes == 0:
            return await loop.run_in_executor(rendering.render_executor(), fn, arg)
        executor = self._process_pool()
        try:
            return await loop.run_in_executor(executor, fn, arg)
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
        """The bill's render failed: retried after a backoff, or given up (`failed_at`)."""
        delay, give_up = self._backoff.after(job.attempts)
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
    # Its own session: the worker's scheduling group stays as it is (see service_runtime.scheduling);
    # out of the worker's process group, so it ends when the worker does, however the worker ends.
    lower_cpu_priority(niceness, own_session=True)
    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid is not None:
        die_with_parent(parent.pid)
    rendering.configure(engine)
    rendering.warm_up()
