"""Rendering a bill's snapshot: one Jinja2 template set for the portal's HTML view and the A4 PDF.

- `render_html(snapshot, sides)` gives a standalone HTML page (stylesheet inlined) with the chosen sides;
  the portal's «Просмотр» shows one side, and it prints like the PDF (`@page` A4).
- `render_pdf(snapshot)` gives the two-page PDF (page 1 the front, page 2 the back) of the same page, by
  the process's engine (`configure`, from `RECEIPTS_PDF_ENGINE`):
  - "chromium" (default): Chromium's print-to-PDF (`adapters/chromium.py`, a persistent browser per
    process), about 2–2.5 × WeasyPrint's bills per CPU-second here; a bill Chromium can't print (not
    installed, didn't start, crashed, timed out) is printed by WeasyPrint instead, and logged;
  - "weasyprint": WeasyPrint alone (`weasyprint_pdf`).
  Both use the system's DejaVu Sans (Debian `fonts-dejavu-core`) for Cyrillic, embedded as subsets.
- `render_batch(snapshots)` (the issue-time renderer's entry point) gives several bills' PDFs: with
  Chromium, printed as one document and split per bill, each split checked (`adapters/pdf_batch.py`),
  ~2–2.5 × the bills per CPU-second of one at a time (measured, see the README); a group that fails is
  printed bill by bill.

Only the snapshot is read, never a projection, so a bill renders the same forever; the same snapshot
(alone, or in the same batch) gives the same bytes from the same engine (Chromium's print time is replaced
by the bill's issue time; the same Chromium build and fonts are assumed), and the same text and pages from
either engine, alone or in a batch. Bump
`TEMPLATE_VERSION` whenever the templates, the stylesheets or the default engine change: stored PDFs are
keyed by it.

WeasyPrint, the fallback engine. What makes its render cheaper (each step measured by
`tests/benchmarks/bench_receipts.py`, see the README; WeasyPrint still spends about half a millisecond of
Python per line of text, so a bill takes ~0.1 s):
- the stylesheets are parsed once and one `FontConfiguration` (Pango's font map) is kept per process;
- `print_ua.css` replaces WeasyPrint's HTML5 user-agent stylesheet (about 250 rules matched against every
  element: ~20 % of a render);
- the templates write XHTML, so the page is parsed by expat (`xml.etree`, C) instead of WeasyPrint's
  pure-Python HTML5 parser (~5 %); a page that isn't well-formed XML falls back to the HTML5 parser;
- the markup is flat and cheap to lay out (see bill.css); line breaks between tags are dropped;
- the QR code is a PNG of one pixel per module (drawn with `image-rendering: pixelated`), with a fixed
  mask pattern: segno otherwise tries all eight and scores each (~8 ms of Python per bill);
- the cyclic garbage collector is paused during a render: WeasyPrint allocates ~10^5 objects per bill
  and the collector's passes over them cost 10–25 %; they are freed right after, by reference counting
  or by the collector's next pass;
- no URL is ever fetched (`data:` only: the QR code).

WeasyPrint's objects are not meant to be shared across threads: `render_pdf_async` runs every WeasyPrint
render of a process in one dedicated thread, so the event loop stays free (Chromium's renders are awaited
on the engine's own loop). The issue-time renderer
(`adapters/pdf_renderer.py`) runs renders in worker processes, through the same `render_pdf`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import gc
import logging
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from importlib import resources
from typing import Any
from xml.etree import ElementTree

import cssselect2  # type: ignore[import-untyped]
import segno
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from prometheus_client import Counter
from weasyprint import CSS, HTML  # type: ignore[import-untyped]
from weasyprint.text.fonts import FontConfiguration  # type: ignore[import-untyped]
from weasyprint.urls import URLFetcher  # type: ignore[import-untyped]

from receipts.adapters import pdf_batch
from receipts.adapters.chromium import ChromiumPdf, ChromiumUnavailable, fixed_dates
from receipts.domain import formatting

log = logging.getLogger(__name__)

TEMPLATE_VERSION = "3"  # 3: printed by Chromium (the same templates as 2)
SIDES = ("front", "back")
QR_MASK = 0  # any of the eight is a valid code; a fixed one spares segno scoring all of them

_BETWEEN_TAGS = re.compile(r">[ \t]*\n\s*<")
# Control characters (but tab and line feed) and non-characters: invisible on paper, not allowed in XML, and
# one of them in a text run garbles the PDF's text layer (WeasyPrint's ToUnicode map).
_UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")


def _printable(value: Any) -> Any:
    """Every value the templates print passes here (Jinja's `finalize`), before it is escaped."""
    if isinstance(value, Markup):  # our own markup (the stylesheet), not a value
        return value
    return _UNPRINTABLE.sub("", value) if isinstance(value, str) else value


@functools.lru_cache(maxsize=1)
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("receipts", "templates"),
        autoescape=select_autoescape(["html", "j2"], default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_printable,
    )
    env.filters["num"] = formatting.number
    env.filters["ru_date"] = formatting.ru_date
    env.filters["ru_datetime"] = formatting.ru_datetime
    env.filters["percent"] = formatting.percent
    return env


def _template_text(name: str) -> str:
    return resources.files("receipts").joinpath(f"templates/{name}").read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def stylesheet_text() -> str:
    return _template_text("bill.css")


@functools.lru_cache(maxsize=256)
def qr_data_uri(payload: str) -> str:
    """The payment QR code as a PNG data URI: UTF-8 payload, error correction M, one pixel per module and
    a two-module quiet zone (the stylesheet scales it up without smoothing)."""
    qr = segno.make(payload, error="m", encoding="utf-8", micro=False, mask=QR_MASK)
    uri: str = qr.png_data_uri(scale=1, border=2)
    return uri


def render_html(snapshot: Mapping[str, Any], sides: Sequence[str] = SIDES, *, inline_css: bool = True) -> str:
    unknown = [s for s in sides if s not in SIDES]
    if unknown:
        raise ValueError(f"unknown side(s): {unknown}")
    template = _environment().get_template("bill.html.j2")
    page = template.render(
        bill=snapshot,
        sides=list(sides),
        qr_src=qr_data_uri(str(snapshot["front"]["qr"]["payload"])),
        # Our own stylesheet, not a value: inside <style> (raw text) an escaped `"` would stay `&#34;`.
        inline_css=Markup(stylesheet_text()) if inline_css else "",  # noqa: S704
    )
    # The line breaks between two tags only lay out the templates' source; for WeasyPrint each would be a
    # whitespace text node to build and discard. (Values are escaped: no `<` of theirs is left here.)
    return _BETWEEN_TAGS.sub("><", page)


class _BillPage(HTML):  # type: ignore[misc]
    """WeasyPrint's HTML document, parsed by expat from the template's XHTML, laid out with print_ua.css.

    Sets what `HTML.__init__` sets (WeasyPrint 70: `base_url`, `url_fetcher`, `media_type`,
    `wrapper_element`, `etree_element`); `tests/unit` renders a bill, so a WeasyPrint upgrade that changes
    them fails there, not in production."""

    def __init__(self, root: ElementTree.Element, ua_stylesheet: Any, url_fetcher: Any) -> None:
        self.base_url = None
        self.url_fetcher = url_fetcher
        self.media_type = "print"
        self.wrapper_element = cssselect2.ElementWrapper.from_html_root(root, content_language=None)
        self.etree_element = self.wrapper_element.etree_element
        self._ua_stylesheet = ua_stylesheet

    def _ua_stylesheets(self, forms: bool = False) -> list[Any]:
        return [self._ua_stylesheet]


class _PdfEngine:
    """What every render of a process shares: the parsed stylesheets and one font configuration."""

    def __init__(self) -> None:
        self.font_config = FontConfiguration()
        self.css = CSS(string=stylesheet_text(), font_config=self.font_config)
        self.ua_css = CSS(string=_template_text("print_ua.css"), font_config=self.font_config)
        self.url_fetcher = URLFetcher(allowed_protocols={"data"})

    def document(self, page: str) -> Any:
        try:
            # Our own template's output: every value in it is escaped, so it declares no entities.
            root = ElementTree.fromstring(page)  # noqa: S314
        except ElementTree.ParseError as exc:  # a template that isn't XHTML: slower, still right
            log.warning("bill page is not well-formed XML; using the HTML5 parser", extra={"error": str(exc)})
            fallback = HTML(string=page, url_fetcher=self.url_fetcher)
            fallback._ua_stylesheets = lambda forms=False: [self.ua_css]
            return fallback
        return _BillPage(root, self.ua_css, self.url_fetcher)

    def render(self, page: str) -> bytes:
        document = self.document(page)
        collecting = gc.isenabled()
        gc.disable()
        try:
            pdf: bytes = document.write_pdf(stylesheets=[self.css], font_config=self.font_config)
        finally:
            if collecting:
                gc.enable()
        return pdf


@functools.lru_cache(maxsize=1)
def _engine() -> _PdfEngine:
    return _PdfEngine()


def warm_up() -> None:
    """Start the engine now (a render process's initializer), not at the first bill: Chromium, or
    WeasyPrint's fonts and stylesheets; and the templates."""
    _environment().get_template("bill.html.j2")
    chromium = _use_chromium()
    if chromium is not None:
        try:
            chromium.render('<html><body><p class="muted">Квитанция <b>№</b></p></body></html>')
            return
        except Exception as exc:
            _chromium_failed(exc)
    _engine().render('<html><body><p class="muted">Квитанция <b>№</b></p></body></html>')


@dataclasses.dataclass(frozen=True, slots=True)
class EngineConfig:
    """Which engine prints the PDF (`RECEIPTS_PDF_ENGINE` and friends, see settings.py)."""

    engine: str = "chromium"  # or "weasyprint"
    chromium_path: str | None = None  # None: Debian's (see chromium.CANDIDATES)
    chromium_pages: int = 1  # bills in flight per process
    timeout_s: float = 30.0  # per bill


_config = EngineConfig()
_chromium: ChromiumPdf | None = None
_chromium_lock = threading.Lock()
_chromium_down_until = 0.0  # after a failed launch, WeasyPrint alone for a while
CHROMIUM_RETRY_S = 60.0


def configure(config: EngineConfig) -> None:
    """Set this process's engine (the API, the worker and each render process call it at start)."""
    global _config, _chromium, _chromium_down_until
    with _chromium_lock:
        if config == _config:
            return
        _config, old, _chromium, _chromium_down_until = config, _chromium, None, 0.0
    if old is not None:
        old.close()


def engine_config() -> EngineConfig:
    return _config


def config_from(settings: Any) -> EngineConfig:
    """The engine's part of `ReceiptsSettings`."""
    return EngineConfig(
        engine=settings.pdf_engine,
        chromium_path=settings.chromium_path,
        chromium_pages=settings.chromium_pages,
        timeout_s=settings.pdf_render_timeout_s,
    )


def chromium_engine() -> ChromiumPdf | None:
    """This process's Chromium (started at its first bill), or None when WeasyPrint is the engine."""
    global _chromium
    if _config.engine != "chromium":
        return None
    with _chromium_lock:
        if _chromium is None:
            _chromium = ChromiumPdf(
                _config.chromium_path, pages=_config.chromium_pages, timeout_s=_config.timeout_s
            )
        return _chromium


def close_engine() -> None:
    """Close this process's Chromium (shutdown); the next bill would start a new one."""
    global _chromium
    with _chromium_lock:
        old, _chromium = _chromium, None
    if old is not None:
        old.close()


def _use_chromium() -> ChromiumPdf | None:
    return chromium_engine() if time.monotonic() >= _chromium_down_until else None


def _chromium_failed(exc: BaseException) -> None:
    """Chromium could not print this bill: it is printed by WeasyPrint instead (the same template). A
    browser that could not start is left alone for CHROMIUM_RETRY_S; one that died restarts at the next
    bill."""
    global _chromium_down_until
    if isinstance(exc, ChromiumUnavailable):
        _chromium_down_until = time.monotonic() + CHROMIUM_RETRY_S
    log.warning("chromium could not print a bill; printing it with WeasyPrint", extra={"error": repr(exc)})


PDFS_PRINTED = Counter(
    "receipts_pdfs_printed_total",
    "Bills' PDFs printed (at issue time, or for a download), by the engine that printed"
    " them; weasyprint while RECEIPTS_PDF_ENGINE=chromium: bills Chromium could not print",
    ["engine"],
)


def engine_of(pdf: bytes) -> str:
    """Which engine printed a bill's PDF. Chromium's carry `/Producer (Skia/PDF …)` in the clear (also
    once split by pypdf, which writes the slash as \\057); WeasyPrint's compress it."""
    return "chromium" if b"/Producer (Skia" in pdf else "weasyprint"


def count_printed(pdfs: Iterable[bytes]) -> None:
    """Count PDFs in `receipts_pdfs_printed_total` (by the process that exports metrics: the worker for
    its render processes' bills, the API for its downloads): a fallback to WeasyPrint is visible on a
    dashboard, not only in a log line."""
    for pdf in pdfs:
        PDFS_PRINTED.labels(engine_of(pdf)).inc()


def _chromium_page(snapshot: Mapping[str, Any]) -> str:
    return render_html(snapshot, SIDES, inline_css=True)


def _deterministic(pdf: bytes, snapshot: Mapping[str, Any]) -> bytes:
    """Chromium stamps the time of printing; the bill's own issue time makes the same snapshot give the
    same bytes."""
    return fixed_dates(pdf, datetime.fromisoformat(str(snapshot["issued_at"])))


def weasyprint_pdf(snapshot: Mapping[str, Any]) -> bytes:
    """The bill through WeasyPrint (the fallback engine). Not thread-safe: call from one thread."""
    return _engine().render(render_html(snapshot, SIDES, inline_css=False))


def render_pdf(snapshot: Mapping[str, Any]) -> bytes:
    """The bill as a two-page A4 PDF, by the configured engine (WeasyPrint if Chromium can't print it).
    Blocking; not for the engine's own thread. WeasyPrint's part is not thread-safe: call it from one
    thread per process (see `render_pdf_async`)."""
    chromium = _use_chromium()
    if chromium is not None:
        page = _chromium_page(snapshot)  # a snapshot the template can't print fails here, for both engines
        try:
            return _deterministic(chromium.render(page), snapshot)
        except Exception as exc:
            _chromium_failed(exc)
    return weasyprint_pdf(snapshot)


class RenderFailed(RuntimeError):
    """A bill of a batch that could not be printed (its cause's repr: it crosses process boundaries)."""


@dataclasses.dataclass(slots=True)
class BatchResult:
    """`render_batch`'s outcome: per bill (in order) its PDF or why it failed; how many were printed in a
    shared document and how many groups had to be printed one by one instead."""

    pdfs: list[bytes | RenderFailed]
    batched: int = 0
    fallbacks: int = 0


_warned_no_pypdf = False


def _render_alone(snapshot: Mapping[str, Any]) -> bytes | RenderFailed:
    try:
        return render_pdf(snapshot)
    except Exception as exc:
        return RenderFailed(repr(exc)[:1000])


def render_batch(snapshots: Sequence[Mapping[str, Any]]) -> BatchResult:
    """The bills' PDFs, printed by Chromium as one document per group of bills with an identical head (the
    stylesheet) and split per bill (`adapters/pdf_batch.py`): each split is the bill's own two pages,
    checked. A group that fails (Chromium, the page count, a check) is printed bill by bill, logged; so is
    everything when WeasyPrint is the engine or pypdf is missing. A bill that can't be printed fails alone.
    Blocking; the issue-time renderer's entry point (a module-level function: render processes get it by
    name). Not for the engine's own thread."""
    global _warned_no_pypdf
    result = BatchResult(pdfs=[RenderFailed("not rendered")] * len(snapshots))
    chromium = _use_chromium() if len(snapshots) > 1 else None
    if chromium is not None and not pdf_batch.available():
        if not _warned_no_pypdf:
            _warned_no_pypdf = True
            log.warning("pypdf is not installed: bills are printed one by one, not in batches")
        chromium = None
    if chromium is None:
        result.pdfs = [_render_alone(s) for s in snapshots]
        return result
    groups: dict[str, list[tuple[int, pdf_batch.BillPage]]] = {}
    for i, snapshot in enumerate(snapshots):
        try:  # a snapshot the template can't print fails here, alone
            bill = pdf_batch.page_parts(_chromium_page(snapshot), snapshot)
        except Exception as exc:
            result.pdfs[i] = RenderFailed(repr(exc)[:1000])
            continue
        groups.setdefault(bill.head, []).append((i, bill))
    for members in groups.values():
        if len(members) == 1:
            result.pdfs[members[0][0]] = _render_alone(snapshots[members[0][0]])
            continue
        bills = [bill for _, bill in members]
        try:
            document = pdf_batch.batch_document(bills)
            printed = chromium.render(document, timeout_s=_config.timeout_s * len(bills))
            pdfs = pdf_batch.split(printed, bills)
        except Exception as exc:
            result.fallbacks += 1
            log.warning(
                "a batch of bills could not be printed and split; printing them one by one",
                extra={"bills": len(bills), "error": repr(exc)[:1000]},
            )
            for i, _ in members:
                result.pdfs[i] = _render_alone(snapshots[i])
            continue
        for (i, _), pdf in zip(members, pdfs, strict=True):
            result.pdfs[i] = _deterministic(pdf, snapshots[i])
        result.batched += len(bills)
    return result


def render_pdfs(snapshots: Sequence[Mapping[str, Any]]) -> list[bytes]:
    """`render_batch` for callers that want every PDF or an exception (the first bill that failed)."""
    pdfs = render_batch(snapshots).pdfs
    for pdf in pdfs:
        if isinstance(pdf, RenderFailed):
            raise pdf
    return [pdf for pdf in pdfs if isinstance(pdf, bytes)]


_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pdf-render")


def render_executor() -> ThreadPoolExecutor:
    """The process's one render thread (WeasyPrint's objects stay in it)."""
    return _executor


async def render_pdf_async(snapshot: Mapping[str, Any]) -> bytes:
    """`render_pdf` from an event loop: Chromium's bills are awaited (up to `chromium_pages` in flight),
    WeasyPrint's run in the render thread."""
    chromium = _use_chromium()
    if chromium is not None:
        page = _chromium_page(snapshot)
        try:
            return _deterministic(await chromium.render_async(page), snapshot)
        except Exception as exc:
            _chromium_failed(exc)
    return await asyncio.get_running_loop().run_in_executor(_executor, weasyprint_pdf, snapshot)
