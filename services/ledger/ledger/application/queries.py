"""The read side's use cases: period filters, and what «Информация по услугам», «Выписка по услуге»,
«Платежи» and the account list's balance show.

Filters:
- months (`from`, `to` as YYYY-MM): default to the twelve months up to the current Almaty month;
  `from` <= `to`, at most 120 months, years 1900–2199;
- dates (`from`, `to` as YYYY-MM-DD): default to the year up to today (Almaty); `from` <= `to`, at most
  3,660 days.
Rows after a stream's last active month carry its balance up to the current month (never beyond).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from contracts.money import ZERO
from ledger.adapters import queries as q
from ledger.domain.period import ALMATY, Period
from ledger.domain.periods import PeriodRow
from ledger.domain.statement import MAX_MONTHS, months_between, window
from service_runtime.db import Connection

MAX_DAYS = 3660
_PERIOD_RE = re.compile(r"^\d{4}-\d{2}$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class InvalidQuery(Exception):
    def __init__(self, code: str, errors: list[tuple[str, str]]) -> None:
        super().__init__(code)
        self.code = code
        self.errors = errors


def today() -> date:
    return datetime.now(ALMATY).date()


def _period(value: str, name: str) -> Period:
    try:
        if not _PERIOD_RE.fullmatch(value):
            raise ValueError(value)
        period = Period.parse(value)
    except ValueError:
        raise InvalidQuery(
            "invalid_period", [(name, "Укажите месяц в формате ГГГГ-ММ, например 2025-03")]
        ) from None
    if not 1900 <= period.year <= 2199:
        raise InvalidQuery("invalid_period", [(name, "Год должен быть между 1900 и 2199")])
    return period


def _months_before(period: Period, months: int) -> Period:
    ordinal = max(period.ordinal - months, 12)  # not before year 1
    return Period(ordinal // 12, ordinal % 12 + 1)


def period_range(from_: str | None, to: str | None, *, current: Period) -> tuple[Period, Period]:
    last = _period(to, "to") if to is not None else current
    first = _period(from_, "from") if from_ is not None else _months_before(last, 11)
    if from_ is not None and to is None and first > last:
        last = first
    if first > last:
        raise InvalidQuery("invalid_range", [("from", "Начало периода не может быть позже его конца")])
    if months_between(first, last) > MAX_MONTHS:
        raise InvalidQuery("range_too_long", [("to", f"Период не может быть длиннее {MAX_MONTHS} месяцев")])
    return first, last


def _date(value: str, name: str) -> date:
    try:
        if not _DATE_RE.fullmatch(value):
            raise ValueError(value)
        day = date.fromisoformat(value)
    except ValueError:
        raise InvalidQuery(
            "invalid_date", [(name, "Укажите дату в формате ГГГГ-ММ-ДД, например 2025-03-14")]
        ) from None
    if not 1900 <= day.year <= 2199:
        raise InvalidQuery("invalid_date", [(name, "Год должен быть между 1900 и 2199")])
    return day


def date_range(from_: str | None, to: str | None, *, current: date) -> tuple[date, date]:
    last = _date(to, "to") if to is not None else current
    first = _date(from_, "from") if from_ is not None else last - timedelta(days=365)
    if from_ is not None and to is None and first > last:
        last = first
    if first > last:
        raise InvalidQuery("invalid_range", [("from", "Начальная дата не может быть позже конечной")])
    if (last - first).days + 1 > MAX_DAYS:
        raise InvalidQuery("range_too_long", [("to", f"Период не может быть длиннее {MAX_DAYS} дней")])
    return first, last


@dataclass(frozen=True, slots=True)
class ServicePeriods:
    service: q.ServiceInfo
    balance: Decimal
    rows: list[PeriodRow]


async def services(conn: Connection, account_no: str, first: Period, last: Period) -> list[ServicePeriods]:
    """«Информация по услугам»: per service of the account, its rows in [first, last]."""
    current = Period.of_date(today())
    streams = await q.streams_of(conn, account_no)
    stored = await q.period_rows(conn, account_no, first, last)
    return [
        ServicePeriods(
            s.service,
            s.balance,
            window(stored.get(s.service.service_code, []), s.last_period, s.balance, first, last, current),
        )
        for s in streams
    ]


@dataclass(frozen=True, slots=True)
class Statement:
    account_no: str
    service: q.ServiceInfo
    first: Period
    last: Period
    rows: list[PeriodRow]
    generated_on: date
    totals: dict[str, Decimal] = field(default_factory=dict)

    @property
    def opening_balance(self) -> Decimal:
        return self.rows[0].opening_balance if self.rows else ZERO

    @property
    def closing_balance(self) -> Decimal:
        return self.rows[-1].closing_balance if self.rows else ZERO


async def statement(
    conn: Connection, account_no: str, service_code: str, first: Period, last: Period
) -> Statement | None:
    """«Выписка по услуге», or None when the account has no such service and the reference does not
    know it either."""
    current_day = today()
    streams = await q.streams_of(conn, account_no, service_code)
    if streams:
        summary = streams[0]
        stored = await q.period_rows(conn, account_no, first, last, service_code)
        rows = window(
            stored.get(service_code, []),
            summary.last_period,
            summary.balance,
            first,
            last,
            Period.of_date(current_day),
        )
        service = summary.service
    else:
        info = await q.service_info(conn, service_code)
        if info is None:
            return None
        service, rows = info, []
    totals = {
        "accrued": sum((r.accrued for r in rows), ZERO),
        "corrections": sum((r.corrections for r in rows), ZERO),
        "paid": sum((r.paid for r in rows), ZERO),
    }
    return Statement(account_no, service, first, last, rows, current_day, totals)


@dataclass(frozen=True, slots=True)
class AccountBalance:
    balance: Decimal
    services: list[tuple[str, Decimal]]


async def balance(conn: Connection, account_no: str) -> AccountBalance:
    streams = await q.streams_of(conn, account_no)
    per_service = [(s.service.service_code, s.balance) for s in streams]
    return AccountBalance(sum((b for _, b in per_service), ZERO), per_service)
