"""Billing periods: calendar months in Asia/Almaty.

A `Period` is a plain (year, month) value. It knows nothing about time zones except in `of_instant`,
the one place where an instant (an aware datetime, stored in UTC) becomes the Almaty month it fell in.
Kazakhstan moved Almaty from UTC+6 to UTC+5 on 2024-03-01; zoneinfo's database carries that history,
so instants on either side of the change land in the right month.
"""

from __future__ import annotations

import calendar
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

ALMATY = ZoneInfo("Asia/Almaty")

_PERIOD_RE = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, order=True, slots=True)
class Period:
    """One calendar month, ordered chronologically; its wire form is `YYYY-MM`."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if isinstance(self.year, bool) or not isinstance(self.year, int) or not 1 <= self.year <= 9999:
            raise ValueError(f"invalid period year: {self.year!r}")
        if isinstance(self.month, bool) or not isinstance(self.month, int) or not 1 <= self.month <= 12:
            raise ValueError(f"invalid period month: {self.month!r}")

    @classmethod
    def parse(cls, text: str) -> Period:
        """Parse `YYYY-MM` strictly (zero-padded month, nothing around it)."""
        match = _PERIOD_RE.fullmatch(text)
        if match is None:
            raise ValueError(f"a period is YYYY-MM, got {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def of_date(cls, day: date) -> Period:
        """The month of a calendar date (a date is already local: no zone conversion happens).

        A `datetime` is refused: its date part would silently be the UTC (or naive) date, which is the
        wrong month near midnight. Use `of_instant` for instants.
        """
        if isinstance(day, datetime):
            raise TypeError("Period.of_date takes a date; use Period.of_instant for a datetime")
        return _month(day.year, day.month) if cls is Period else cls(day.year, day.month)

    @classmethod
    def of_instant(cls, instant: datetime) -> Period:
        """The Almaty calendar month an aware instant falls in."""
        if instant.tzinfo is None or instant.utcoffset() is None:
            raise ValueError("Period.of_instant needs an aware datetime")
        local = instant.astimezone(ALMATY)
        return cls(local.year, local.month)

    @classmethod
    def span(cls, first: Period, last: Period) -> Iterator[Period]:
        """Every period from `first` to `last`, both included (nothing when first > last)."""
        current = first
        while current <= last:
            yield current
            if current == last:
                return
            current = _next(current)

    @property
    def ordinal(self) -> int:
        """Months since year 0: consecutive periods have consecutive ordinals."""
        return self.year * 12 + self.month - 1

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def last_day(self) -> date:
        return date(self.year, self.month, calendar.monthrange(self.year, self.month)[1])

    def contains(self, day: date) -> bool:
        return Period.of_date(day) == self

    def next(self) -> Period:
        if self.month == 12:
            return Period(self.year + 1, 1)
        return Period(self.year, self.month + 1)

    def prev(self) -> Period:
        if self.month == 1:
            return Period(self.year - 1, 12)
        return Period(self.year, self.month - 1)

    def format(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def __str__(self) -> str:
        return self.format()


def period_of_instant(instant: datetime) -> Period:
    """The Almaty calendar month of an aware instant (typically a UTC timestamp)."""
    return Period.of_instant(instant)


@functools.lru_cache(maxsize=4096)
def _month(year: int, month: int) -> Period:
    """One Period object per month (events held by the aggregate cache share them)."""
    return Period(year, month)


@functools.lru_cache(maxsize=4096)
def parse_period(text: str) -> Period:
    """`Period.parse`, cached: projections parse the same few months over and over."""
    return Period.parse(text)


@functools.lru_cache(maxsize=4096)
def _next(period: Period) -> Period:
    return period.next()


@functools.lru_cache(maxsize=4096)
def period_of_ordinal(ordinal: int) -> Period:
    """The period with this `ordinal` (months since year 0), cached."""
    return Period(ordinal // 12, ordinal % 12 + 1)
