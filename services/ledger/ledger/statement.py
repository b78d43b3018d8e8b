"""«Выписка по услуге» as a print-styled HTML page and as a PDF, from one Jinja2 template.

The PDF is WeasyPrint's rendering of the same HTML (A4 landscape, DejaVu Sans for Cyrillic and ₸;
on Debian: fonts-dejavu-core, with libpango-1.0-0 and libpangoft2-1.0-0 for WeasyPrint itself).
Rendering is CPU-bound, so it runs in a worker thread, one at a time per process.
"""

from __future__ import annotations

import asyncio
import threading
from decimal import Decimal
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from contracts.money import format_money
from ledger.application.queries import Statement
from ledger.domain.period import Period

TEMPLATES = Path(__file__).resolve().parent / "templates"

MONTHS = (
    "январь", "февраль", "март", "апрель", "май", "июнь",
    "июль", "август", "сентябрь", "октябрь", "ноябрь", "декабрь",
)  # fmt: skip


def month_name(period: Period) -> str:
    return f"{MONTHS[period.month - 1]} {period.year}"


def money_text(value: Decimal) -> str:
    """1234567.5 → "1 234 567,50" (Russian grouping, decimal comma)."""
    text = format_money(value)
    sign = "-" if text.startswith("-") else ""
    whole, _, cents = text.lstrip("-").partition(".")
    groups: list[str] = []
    while whole:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    return f"{sign}{' '.join(groups) or '0'},{cents}"


_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
_env.filters["month"] = month_name
_env.filters["money"] = money_text
_pdf_lock = threading.Lock()  # one rendering at a time: bounded memory and CPU


def render_html(statement: Statement) -> str:
    return _env.get_template("statement.html").render(
        account_no=statement.account_no,
        service=statement.service,
        first=statement.first,
        last=statement.last,
        rows=statement.rows,
        totals=statement.totals,
        opening_balance=statement.opening_balance,
        closing_balance=statement.closing_balance,
        generated_on=statement.generated_on,
    )


def _pdf(html: str) -> bytes:
    from weasyprint import HTML  # type: ignore[import-untyped]  # heavy: imported on first use

    with _pdf_lock:
        pdf: bytes = HTML(string=html, base_url=str(TEMPLATES)).write_pdf()
    return pdf


async def render_pdf(statement: Statement) -> bytes:
    return await asyncio.to_thread(_pdf, render_html(statement))
