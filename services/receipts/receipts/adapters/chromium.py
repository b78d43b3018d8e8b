"""Chromium's print-to-PDF of the bill's page: the production PDF engine (`RECEIPTS_PDF_ENGINE=chromium`).

Measured on this machine against WeasyPrint (tests/benchmarks/bench_receipts.py, the whole process tree's
CPU: Python, Playwright's node driver, every Chromium process): about 2–2.5 × as many bills per CPU-second,
from the same template and stylesheet (see the README, «What a render costs»).

One `ChromiumPdf` per process (`rendering` keeps it): a persistent headless Chromium (Debian's, never a
downloaded one) driven by Playwright, on a private event loop in a daemon thread, so that both a sync caller
(a render process's or the API's render thread) and an async one (any event loop) can use it.

- Lazy: the browser starts at the first bill (or `warm_up`), not at import.
- Restarted when it dies: a disconnected browser (killed, crashed, out of memory) is dropped and the next
  bill starts a new one; a bill that fails or times out closes its page (its renderer may be wedged).
  A browser that fails to start is started once more before the bill falls back to WeasyPrint.
- Bounded: at most `pages` bills in flight per process (one page each, reused from bill to bill); the others
  wait for a page.
- A timeout per bill (`timeout_s`, the whole of load + print; a document of n bills gets n of them).
- Idle for free: a page left showing a bill keeps Chromium busy (~50–80 ms of CPU per second, measured);
  a page no bill took for a second shows an empty document instead (~0).
- Closed gracefully by `close()` (also at interpreter exit): pages, browser, driver.
- No network: JavaScript off, the context offline; the page is our own template (values escaped), its
  stylesheet inlined, its fonts the system's (fontconfig: DejaVu Sans), its one image a `data:` PNG.

Chromium writes the print time into the PDF's /CreationDate and /ModDate; `fixed_dates` replaces both with
the bill's own issue time (same length, so the cross-reference offsets stay right): the same snapshot gives
the same bytes, with the same Chromium and fonts.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import concurrent.futures
import contextlib
import logging
import os
import re
import shutil
import threading
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from receipts.adapters.machine_load import process_tree
from service_runtime.scheduling import lower_scheduling_group, scheduling_group

log = logging.getLogger(__name__)

T = TypeVar("T")

# Debian's binary itself first (/usr/bin/chromium is a shell wrapper around it).
CANDIDATES = (
    "/usr/lib/chromium/chromium",
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/bin/google-chrome",
)
ARGS = (
    "--headless=new",
    "--no-sandbox",  # containers: no user namespaces; the page is our own template, JavaScript off
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--mute-audio",
    "--font-render-hinting=none",
)
# Page.printToPDF's parameters (A4 by the stylesheet's @page); Playwright's page.pdf() names them:
CDP_PDF_OPTIONS: dict[str, Any] = {
    "printBackground": True,
    "preferCSSPageSize": True,
    "generateTaggedPDF": False,
    "generateDocumentOutline": False,
}
PDF_OPTIONS: dict[str, Any] = {
    "format": "A4",
    "print_background": True,
    "prefer_css_page_size": True,  # bill.css: @page { size: A4; margin: 10mm 11mm }
    "tagged": False,
    "outline": False,
}
LAUNCH_ATTEMPTS = 2  # a browser that fails to start is started once more before the caller falls back
LAUNCH_RETRY_PAUSE_S = 1.0
IDLE_BLANK_S = 1.0  # a page idle this long shows an empty document (see _Tab.blank)
_BROWSER_NAMES = {b"chromium", b"chrome", b"chromium-browser", b"google-chrome"}
_PDF_DATE = re.compile(rb"/(CreationDate|ModDate) \(D:\d{14}[+\-Z][0-9']*\)")


class ChromiumUnavailable(RuntimeError):
    """No Chromium (or no Playwright) here: the caller falls back to WeasyPrint."""


_NICENESS_EVERY = 5  # prints between two checks of the browser processes' priority (a /proc scan)


def descendants() -> set[int]:
    """The processes descending from this one (from /proc)."""
    return set(process_tree(Path("/proc"), os.getpid())) - {os.getpid()}


def find_chromium(path: str | None = None) -> str | None:
    if path:
        return path if os.path.isfile(path) and os.access(path, os.X_OK) else shutil.which(path)
    for candidate in CANDIDATES:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def pdf_date(when: datetime) -> str:
    """`when` as a PDF date in UTC, the way Chromium writes it: D:YYYYMMDDHHmmSS+00'00'."""
    utc = when.astimezone(UTC) if when.tzinfo else when
    return "D:" + utc.strftime("%Y%m%d%H%M%S") + "+00'00'"


def fixed_dates(pdf: bytes, when: datetime) -> bytes:
    """The PDF with its creation and modification dates set to `when` (in UTC), not the time of printing.
    Each replacement has the length of what it replaces, so the cross-reference offsets stay right."""
    utc = when.astimezone(UTC) if when.tzinfo else when
    stamp = utc.strftime("%Y%m%d%H%M%S").encode()

    def same_length(m: re.Match[bytes]) -> bytes:
        new = b"/%s (D:%s+00'00')" % (m.group(1), stamp)
        return new if len(new) == len(m.group(0)) else m.group(0)

    return _PDF_DATE.sub(same_length, pdf)


class ChromiumPdf:
    def __init__(self, executable: str | None = None, *, pages: int = 1, timeout_s: float = 30.0) -> None:
        self.executable = executable
        self.pages = max(1, pages)
        self.timeout_s = timeout_s
        # Route every request through Playwright (abort all but data:)? The context is offline already and
        # the page is our own template (values escaped, only data: URLs); routing costs ~7 % per bill.
        self.route_requests = False
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        # Owned by the private loop's thread only:
        self._playwright: Any = None
        self._browser: Any = None
        self._context: Any = None
        self._idle: list[_Tab] = []  # pages ready for the next bill
        self._slots: asyncio.Semaphore | None = None
        self._starting: asyncio.Lock | None = None
        self.launches = 0  # browsers started so far (a restart adds one)
        self.prints = 0  # documents printed so far
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        atexit.register(self.close)

    # --- the public, thread-safe API -------------------------------------------------------------------
    def render(self, html: str, *, timeout_s: float | None = None) -> bytes:
        """Print `html` (a whole page, CSS inlined) to PDF, from any thread but the engine's own.
        `timeout_s` replaces the engine's per-bill timeout (a batch of bills gets one per bill)."""
        return self._call(self._render(html, timeout_s)).result()

    async def render_async(self, html: str) -> bytes:
        """The same, awaited from any event loop (the engine's loop stays its own)."""
        return await asyncio.wrap_future(self._call(self._render(html)))

    def start(self) -> None:
        """Start the browser now (a render process's warm-up), not at the first bill."""
        self._call(self._ensure_browser()).result()

    def close(self) -> None:
        """Close the pages, the browser and the driver; stop the engine's thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=15)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)

    def browser_pids(self) -> list[int]:
        """The browser processes (not their renderers) descending from this process, from /proc (tests
        kill one to see the engine restart it)."""
        found = []
        for pid in descendants():
            with contextlib.suppress(OSError):
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().replace(b"\0", b" ").split()  # Chromium rewrites its children's titles
                if (
                    argv
                    and os.path.basename(argv[0]) in _BROWSER_NAMES
                    and not any(a.startswith(b"--type=") for a in argv)
                ):
                    found.append(pid)
        return found

    def hold_niceness(self) -> None:
        """Keep every process of the browser at this process's CPU priority. The render processes run at
        a low priority (`render_niceness`) so that bills print with the CPU nobody else needs; Chromium,
        when it may (run as root, as on a developer's machine), raises its own processes' priority
        (renderers to 0, some helpers to -8) and would compete with billing runs and the APIs."""
        own = os.getpriority(os.PRIO_PROCESS, 0)
        own_group = scheduling_group()
        for pid in descendants():
            with contextlib.suppress(OSError):
                if os.getpriority(os.PRIO_PROCESS, pid) < own:
                    os.setpriority(os.PRIO_PROCESS, pid, own)
            # Chromium's zygote starts sessions of its own: with autogroups on, each is a scheduling
            # group, whose niceness (not the processes') decides its share (see pdf_renderer).
            lower_scheduling_group(pid, own, unless=own_group)  # never this process's own group

    def _hold_niceness_or_say_why(self) -> None:
        # A priority is a courtesy: a browser that printed (or started) is never failed over it.
        try:
            self.hold_niceness()
        except Exception as exc:
            log.warning("could not hold the browser's CPU priority", extra={"error": repr(exc)})

    # --- the engine's loop -----------------------------------------------------------------------------
    def _call(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        with self._lock:
            if self._closed:
                coro.close()
                raise ChromiumUnavailable("the Chromium engine is closed")
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                started = threading.Event()
                self._thread = threading.Thread(
                    target=self._run_loop, args=(self._loop, started), name="chromium-pdf", daemon=True
                )
                self._thread.start()
                started.wait()
            loop = self._loop
        return asyncio.run_coroutine_threadsafe(coro, loop)

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(started.set)
        loop.run_forever()

    async def _ensure_browser(self) -> Any:
        if self._starting is None:
            self._starting = asyncio.Lock()
            self._slots = asyncio.Semaphore(self.pages)
        async with self._starting:
            if self._browser is not None and self._browser.is_connected():
                return self._context
            await self._drop_browser()
            executable = find_chromium(self.executable)
            if executable is None:
                raise ChromiumUnavailable(
                    f"no Chromium executable ({self.executable or ', '.join(CANDIDATES)})"
                )
            try:
                from playwright.async_api import async_playwright
            except ImportError as exc:
                raise ChromiumUnavailable("playwright is not installed") from exc
            for attempt in range(1, LAUNCH_ATTEMPTS + 1):
                try:
                    browser, context = await self._launch(async_playwright, executable)
                    break
                except Exception as exc:
                    # Perhaps the driver died: the next attempt starts a new one too.
                    driver, self._playwright = self._playwright, None
                    if driver is not None:
                        with contextlib.suppress(Exception):
                            await driver.stop()
                    if attempt == LAUNCH_ATTEMPTS:
                        raise ChromiumUnavailable(f"Chromium did not start: {exc!r}"[:1000]) from exc
                    # Once more before giving up: the caller would print with WeasyPrint for a while.
                    log.warning("chromium did not start; trying again", extra={"error": repr(exc)[:1000]})
                    await asyncio.sleep(LAUNCH_RETRY_PAUSE_S)
            self._browser, self._context = browser, context
            self.launches += 1
            self._hold_niceness_or_say_why()
            log.info("chromium started", extra={"executable": executable, "launches": self.launches})
            return context

    async def _launch(self, async_playwright: Any, executable: str) -> tuple[Any, Any]:
        if self._playwright is None:
            self._playwright = await async_playwright().start()
        # Never a downloaded browser: always the given executable.
        browser = await self._playwright.chromium.launch(
            executable_path=executable, args=list(ARGS), timeout=self.timeout_s * 1000
        )
        try:
            context = await browser.new_context(java_script_enabled=False, offline=True)
            if self.route_requests:
                await context.route("**/*", _only_data_urls)
        except BaseException:
            with contextlib.suppress(Exception):
                await browser.close()  # not left running behind a failed start
            raise
        return browser, context

    async def _render(self, html: str, timeout_s: float | None = None) -> bytes:
        timeout = self.timeout_s if timeout_s is None else timeout_s
        await self._ensure_browser()
        assert self._slots is not None
        async with self._slots:
            for attempt in (1, 2):
                context = await self._ensure_browser()
                tab: _Tab | None = self._idle.pop() if self._idle else None
                try:
                    async with asyncio.timeout(timeout):
                        if tab is None:
                            tab = await _Tab.open(context)
                        pdf = await tab.print(html)
                except TimeoutError:
                    if tab is not None:
                        await tab.close()  # its renderer may be wedged; the browser stays
                    raise
                except Exception as exc:
                    if tab is not None:
                        await tab.close()
                    # The browser died under this bill (killed, crashed: Playwright may not know it yet),
                    # or its page broke: print the bill again, once, on a new page (of a new browser).
                    dead = type(exc).__name__ == "TargetClosedError" or not (
                        self._browser is not None and self._browser.is_connected()
                    )
                    if dead:
                        await self._drop_browser()
                    if attempt == 1:
                        log.warning(
                            "chromium died; restarting it"
                            if dead
                            else "a page failed; printing on a new one",
                            extra={"error": repr(exc)},
                        )
                        continue
                    raise
                if context is self._context:
                    self._idle.append(tab)
                    self._later(self._blank_when_idle(tab, tab.used))
                if self.prints % _NICENESS_EVERY == 0:
                    self._hold_niceness_or_say_why()
                self.prints += 1
                return pdf
        raise AssertionError("unreachable")

    def _later(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _blank_when_idle(self, tab: _Tab, used: int) -> None:
        """Blank a page nobody took for the next bill within IDLE_BLANK_S (under load, pages are reused
        at once and never blanked)."""
        await asyncio.sleep(IDLE_BLANK_S)
        if tab.used != used or tab not in self._idle:
            return
        try:
            async with asyncio.timeout(self.timeout_s):
                await tab.blank()
        except Exception:
            # Closed only if still idle: a bill may have taken the page meanwhile (it waits for the lock);
            # a page that is broken fails that bill, which closes it and prints again.
            if tab in self._idle:
                self._idle.remove(tab)
                await tab.close()

    async def _drop_browser(self) -> None:
        browser, self._browser, self._context, self._idle = self._browser, None, None, []
        if browser is not None:
            with contextlib.suppress(Exception):
                await browser.close()

    async def _shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self._drop_browser()
        if self._playwright is not None:
            with contextlib.suppress(Exception):
                await self._playwright.stop()
            self._playwright = None


class _Tab:
    """A page of the browser, reused from bill to bill, printed through its CDP session: the document is
    replaced by `Page.setDocumentContent` (no navigation, no script) and printed by `Page.printToPDF`.
    Measured cheaper than Playwright's `set_content` + `page.pdf` (see the benchmark)."""

    def __init__(self, page: Any, cdp: Any, frame_id: str) -> None:
        self.page, self.cdp, self.frame_id = page, cdp, frame_id
        self.lock = asyncio.Lock()  # one document at a time: a bill, or the blank page
        self.used = 0  # bills printed

    @classmethod
    async def open(cls, context: Any) -> _Tab:
        page = await context.new_page()
        cdp = await context.new_cdp_session(page)
        await cdp.send("Page.enable")
        tree = await cdp.send("Page.getFrameTree")
        return cls(page, cdp, tree["frameTree"]["frame"]["id"])

    async def _load(self, html: str) -> None:
        loaded: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_load(_: Any) -> None:
            if not loaded.done():
                loaded.set_result(None)

        self.cdp.once("Page.loadEventFired", on_load)
        await self.cdp.send("Page.setDocumentContent", {"frameId": self.frame_id, "html": html})
        await loaded

    async def print(self, html: str) -> bytes:
        async with self.lock:
            await self._load(html)
            result = await self.cdp.send("Page.printToPDF", CDP_PDF_OPTIONS)
            self.used += 1
            return base64.b64decode(result["data"])

    async def blank(self) -> None:
        """Show an empty page: a bill's page left open keeps its renderer busy (measured ~50–80 ms of CPU
        per second, idle); an empty one costs nothing."""
        async with self.lock:
            await self._load("<html><body></body></html>")

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.cdp.detach()
        with contextlib.suppress(Exception):
            await self.page.close()


async def _only_data_urls(route: Any) -> None:
    if route.request.url.startswith("data:"):
        await route.continue_()
    else:
        await route.abort()
