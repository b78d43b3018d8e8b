"""Billing periods: calendar months in Asia/Almaty, written `YYYY-MM`."""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from datetime import date

_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")

MONTHS_NOMINATIVE = (
    "январь",
    "февраль",
    "март",
    "апрель",
    "май",
    "июнь",
    "июль",
    "август",
    "сентябрь",
    "октябрь",
    "ноябрь",
    "декабрь",
)
DUE_DAY = 25


def parse(period: str) -> tuple[int, int]:
    match = _PERIOD.fullmatch(period)
    if match is None:
        raise ValueError(f"not a period (YYYY-MM): {period!r}")
    return int(match.group(1)), int(match.group(2))


def is_period(value: str) -> bool:
    return _PERIOD.fullmatch(value) is not None


def first_day(period: str) -> date:
    year, month = parse(period)
    return date(year, month, 1)


def last_day(period: str) -> date:
    year, month = parse(period)
    return date(year, month, calendar.monthrange(year, month)[1])


def next_period(period: str) -> str:
    year, month = parse(period)
    return f"{year + month // 12:04d}-{month % 12 + 1:02d}"


def previous_period(period: str) -> str:
    year, month = parse(period)
    return f"{year - 1:04d}-12" if month == 1 else f"{year:04d}-{month - 1:02d}"


def span(first: str, last: str) -> Iterator[str]:
    """Every period from `first` to `last`, both included (none when last < first)."""
    current = first
    while current <= last:
        yield current
        current = next_period(current)


def due_date(period: str) -> date:
    """The bill is due on the 25th of the month after its period."""
    return first_day(next_period(period)).replace(day=DUE_DAY)


def label(period: str) -> str:
    """«март 2025»."""
    year, month = parse(period)
    return f"{MONTHS_NOMINATIVE[month - 1]} {year}"
