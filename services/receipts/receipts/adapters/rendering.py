"""Rendering a bill's snapshot: one Jinja2 template set for the portal's HTML view and the A4 PDF.

- `render_html(snapshot, sides)` gives a standalone HTML page (stylesheet inlined) with the chosen sides;
  the portal's «Просмотр» shows one side, and it prints like the PDF (`@page` A4).
- `render_pdf(snapshot)` gives the two-page PDF (page 1 the front, page 2 the back) through WeasyPrint,
  with the system's DejaVu Sans (Debian `fonts-dejavu-core`) for Cyrillic.

Only the snapshot is read, never a projection, so a bill renders the same forever; the same snapshot
gives the same bytes (no dates or random ids in the document). Bump `TEMPLATE_VERSION` whenever the
templates or the stylesheets change: stored PDFs are keyed by it.

What makes a render cheaper (each step measured by `tests/benchmarks/bench_receipts.py`, see the README;
WeasyPrint still spends about half a millisecond of Python per line of text, so a bill takes ~0.1 s):
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

WeasyPrint's objects are not meant to be shared across threads: `render_pdf_async` runs every render of a
process in one dedicated thread, so the event loop stays free. The issue-time renderer
(`adapters/pdf_renderer.py`) runs renders in worker processes, through the same `render_pdf`.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any
from xml.etree import ElementTree

import cssselect2  # type: ignore[import-untyped]
import segno
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from weasyprint import CSS, HTML  # type: ignore[import-untyped]
from weasyprint.text.fonts import FontConfiguration  # type: ignore[import-untyped]
from weasyprint.urls import URLFetcher  # type: ignore[import-untyped]

from receipts.domain import formatting

log = logging.getLogger(__name__)

TEMPLATE_VERSION = "2"
SIDES = ("front", "back")
QR_MASK = 0  # any of the eight is a valid code; a fixed one spares segno scoring all of them

_BETWEEN_TAGS = re.compile(r">[ \t]*\n\s*<")
# Control characters (but tab and line feed) and non-characters: invisible on paper, not allowed in XML, and
# one of them in a text run garbles the PDF's text layer (WeasyPrint's ToUnicode map).
_UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")


def _printable(value: Any) -> Any:
    """Every value the templates print passes here (Jinja's `finalize`), before it is escaped."""
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
        inline_css=stylesheet_text() if inline_css else "",
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
    """Load fonts, stylesheets and templates now (a worker process's initializer), not at the first bill."""
    _engine().render('<html><body><p class="muted">Квитанция <b>№</b></p></body></html>')
    _environment().get_template("bill.html.j2")


def render_pdf(snapshot: Mapping[str, Any]) -> bytes:
    """The bill as a two-page A4 PDF. Not thread-safe: call from one thread (see `render_pdf_async`)."""
    return _engine().render(render_html(snapshot, SIDES, inline_css=False))


_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pdf-render")


def render_executor() -> ThreadPoolExecutor:
    """The process's one render thread (WeasyPrint's objects stay in it)."""
    return _executor


async def render_pdf_async(snapshot: Mapping[str, Any]) -> bytes:
    return await asyncio.get_running_loop().run_in_executor(_executor, render_pdf, snapshot)
