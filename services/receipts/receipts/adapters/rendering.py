"""Rendering a bill's snapshot: one Jinja2 template set for the portal's HTML view and the A4 PDF.

- `html(snapshot, sides)` gives a standalone HTML page (stylesheet inlined) with the chosen sides;
  the portal's «Просмотр» shows one side, and it prints like the PDF (`@page` A4).
- `pdf(snapshot)` gives the two-page PDF (page 1 the front, page 2 the back) through WeasyPrint,
  with the system's DejaVu Sans (Debian `fonts-dejavu-core`) for Cyrillic.

Only the snapshot is read, never a projection, so a bill renders the same forever. Bump
`TEMPLATE_VERSION` whenever the templates or the stylesheet change: cached PDFs are keyed by it.

WeasyPrint's objects are not meant to be shared across threads: `render_pdf_async` runs every render in
one dedicated thread, so the event loop stays free and one process renders on one core.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any

import segno
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from weasyprint import CSS, HTML  # type: ignore[import-untyped]
from weasyprint.text.fonts import FontConfiguration  # type: ignore[import-untyped]

from receipts.domain import formatting

log = logging.getLogger(__name__)

TEMPLATE_VERSION = "1"
SIDES = ("front", "back")


@functools.lru_cache(maxsize=1)
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("receipts", "templates"),
        autoescape=select_autoescape(["html", "j2"], default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = formatting.number
    env.filters["ru_date"] = formatting.ru_date
    env.filters["ru_datetime"] = formatting.ru_datetime
    env.filters["percent"] = formatting.percent
    return env


@functools.lru_cache(maxsize=1)
def stylesheet_text() -> str:
    return resources.files("receipts").joinpath("templates/bill.css").read_text(encoding="utf-8")


@functools.lru_cache(maxsize=256)
def qr_data_uri(payload: str) -> str:
    """The payment QR code as a PNG data URI (UTF-8 payload, error correction M, 4 px per module, drawn
    without smoothing). A PNG costs WeasyPrint far less than the equivalent SVG path."""
    qr = segno.make(payload, error="m", encoding="utf-8", micro=False)
    uri: str = qr.png_data_uri(scale=4, border=2)
    return uri


def render_html(snapshot: Mapping[str, Any], sides: Sequence[str] = SIDES, *, inline_css: bool = True) -> str:
    unknown = [s for s in sides if s not in SIDES]
    if unknown:
        raise ValueError(f"unknown side(s): {unknown}")
    template = _environment().get_template("bill.html.j2")
    return template.render(
        bill=snapshot,
        sides=list(sides),
        qr_src=qr_data_uri(str(snapshot["front"]["qr"]["payload"])),
        inline_css=stylesheet_text() if inline_css else "",
    )


class _PdfEngine:
    """WeasyPrint with the stylesheet parsed once and one font configuration (its font cache) reused."""

    def __init__(self) -> None:
        self.font_config = FontConfiguration()
        self.css = CSS(string=stylesheet_text(), font_config=self.font_config)

    def render(self, html: str) -> bytes:
        pdf: bytes = HTML(string=html).write_pdf(stylesheets=[self.css], font_config=self.font_config)
        return pdf


@functools.lru_cache(maxsize=1)
def _engine() -> _PdfEngine:
    return _PdfEngine()


def render_pdf(snapshot: Mapping[str, Any]) -> bytes:
    """The bill as a two-page A4 PDF. Not thread-safe: call from one thread (see `render_pdf_async`)."""
    return _engine().render(render_html(snapshot, SIDES, inline_css=False))


_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pdf-render")


async def render_pdf_async(snapshot: Mapping[str, Any]) -> bytes:
    return await asyncio.get_running_loop().run_in_executor(_executor, render_pdf, snapshot)
