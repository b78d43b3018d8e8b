"""How the bill prints numbers and dates (Russian conventions): `12 345,67`, `25.04.2025`, `12 %`."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

ALMATY = ZoneInfo("Asia/Almaty")
NBSP = "\u00a0"


def number(value: str | Decimal | int | None) -> str:
    """'12345.67' → '12 345,67' (no-break space between thousands, decimal comma)."""
    if value is None:
        return "—"
    text = f"{Decimal(str(value)):f}"
    sign = "-" if text.startswith("-") else ""
    whole, _, fraction = text.lstrip("-").partition(".")
    groups: list[str] = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    groups.insert(0, whole)
    return sign + NBSP.join(groups) + ("," + fraction if fraction else "")


def ru_date(value: str | date | None) -> str:
    if value is None or value == "":
        return "—"
    day = value if isinstance(value, date) else date.fromisoformat(str(value))
    return day.strftime("%d.%m.%Y")


def ru_datetime(value: str | datetime) -> str:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.astimezone(ALMATY).strftime("%d.%m.%Y %H:%M")


def percent(rate: str | Decimal) -> str:
    """'0.12' → '12 %', '0.125' → '12,5 %'."""
    scaled = (Decimal(str(rate)) * 100).normalize()
    return f"{number(f'{scaled:f}')}{NBSP}%"
