"""Jinja2 templates of the portal, with gettext (Babel catalogs) and display filters."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from gateway.i18n import N_, catalogs

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
STATIC_DIR = Path(__file__).resolve().parent / "static"

MONTHS = [
    N_("Январь"),
    N_("Февраль"),
    N_("Март"),
    N_("Апрель"),
    N_("Май"),
    N_("Июнь"),
    N_("Июль"),
    N_("Август"),
    N_("Сентябрь"),
    N_("Октябрь"),
    N_("Ноябрь"),
    N_("Декабрь"),
]
SHORT_MONTHS = [
    N_("янв"),
    N_("фев"),
    N_("мар"),
    N_("апр"),
    N_("май"),
    N_("июн"),
    N_("июл"),
    N_("авг"),
    N_("сен"),
    N_("окт"),
    N_("ноя"),
    N_("дек"),
]


def _gettext(message: str) -> str:
    return catalogs().gettext(message)


def _ngettext(singular: str, plural: str, n: int) -> str:
    return catalogs().translations().ngettext(singular, plural, n)


def money(value: Any) -> str:
    """'1 520.40' (no-break space between thousands); '—' when unknown."""
    if value is None or value == "":
        return "—"
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    text = f"{amount:,.2f}".replace(",", "\u00a0")
    return text.replace("-", "−", 1) if amount < 0 else text


def kwh(value: Any) -> str:
    return money(value)


def date(value: Any) -> str:
    """'14.03.2025' from an ISO date (or datetime)."""
    if not value:
        return "—"
    text = str(value)
    try:
        day = dt.date.fromisoformat(text[:10])
    except ValueError:
        return text
    return day.strftime("%d.%m.%Y")


def period(value: Any) -> str:
    """'Март 2025' from '2025-03'."""
    text = str(value or "")
    try:
        year, month = text.split("-")[:2]
        return f"{_gettext(MONTHS[int(month) - 1])} {year}"
    except (ValueError, IndexError):
        return text


def build_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html", "svg"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(_gettext, _ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters["money"] = money
    env.filters["kwh"] = kwh
    env.filters["date"] = date
    env.filters["period"] = period
    env.globals["Markup"] = Markup
    return env
