"""Read-side use cases: the what-if calculation, the quote, the flat/tiered comparison, the chart."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from calculator.adapters.accounts import household_on, load_account
from calculator.adapters.own_events import load_charges, load_readings
from calculator.domain.billing import (
    install_point,
    meter_on,
    previous_periods,
    replacement_between,
    spread_by_month,
)
from calculator.domain.errors import RatingError
from calculator.domain.rating import AccountAttributes, MeterReading, RatingResult, TariffOption, rate
from calculator.domain.tariffs import TariffCatalog
from contracts.money import ZERO, format_money
from service_runtime.db import Connection


class AccountNotReady(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _rate_str(value: Decimal) -> str:
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -2:
        return format_money(value)
    return f"{value.normalize():f}"


def result_to_api(result: RatingResult) -> dict[str, Any]:
    """The rating result of PUBLIC_API.md (kWh and money as two-decimal strings; a line's `to` is the
    first day not in its piece, i.e. the next piece's `from` or the new reading's date)."""
    return {
        "previous": {"date": result.previous.date.isoformat(), "value": format_money(result.previous.value)},
        "current": {"date": result.current.date.isoformat(), "value": format_money(result.current.value)},
        "days": result.days,
        "consumption_kwh": format_money(result.consumption_kwh),
        "tariff_option_requested": result.tariff_option_requested,
        "tariff_option_applied": result.tariff_option_applied,
        "fallback_reason": result.fallback_reason,
        "fallback_message": result.fallback_message_ru,
        "rollover": result.rollover,
        "meter_replaced_on": result.replacement.replaced_on.isoformat() if result.replacement else None,
        "lines": [
            {
                "from": line.from_date.isoformat(),
                "to": line.to_date.isoformat(),
                "tier": line.tier,
                "limit_kwh": format_money(line.limit_kwh) if line.limit_kwh is not None else None,
                "kwh": format_money(line.kwh),
                "rate": _rate_str(line.rate),
                "amount": format_money(line.amount),
            }
            for line in result.lines
        ],
        "pieces": [
            {
                "from": p.from_date.isoformat(),
                "to": p.to_date.isoformat(),
                "days": p.days,
                "kwh": format_money(p.kwh),
                "tariff_effective_from": p.tariff_effective_from.isoformat(),
                "vat_rate": _rate_str(p.vat_rate),
                "net": format_money(p.net),
                "vat": format_money(p.vat),
            }
            for p in result.pieces
        ],
        "net_total": format_money(result.net_total),
        "vat": format_money(result.vat),
        "total": format_money(result.total),
    }


async def what_if(
    conn: Connection, catalog: TariffCatalog, account_no: str, reading_date: dt.date, value: Decimal
) -> RatingResult:
    """Rate a hypothetical reading from the account's last recorded reading (or its first meter's
    installation), with its attributes on `reading_date`. Records nothing."""
    account = await load_account(conn, account_no)
    if account is None:
        raise AccountNotReady("account_not_found")
    readings = await load_readings(conn, account_no)
    previous = (
        MeterReading(readings[-1].reading_date, readings[-1].value)
        if readings
        else install_point(account.meters)
    )
    meter = meter_on(account.meters, reading_date)
    household = await household_on(conn, account_no, reading_date)
    if previous is None or meter is None or household is None:
        raise AccountNotReady("no_meter")
    return rate(
        previous,
        MeterReading(reading_date, value),
        household.attributes(meter.digits),
        catalog,
        replacement_between(account.meters, previous.date, reading_date),
    )


@dataclass(frozen=True, slots=True)
class _Interval:
    previous: MeterReading
    current: MeterReading
    flat_total: Decimal
    tiered_total: Decimal
    tiered_fell_back: bool
    consumption: Decimal


def _subtract_months(day: dt.date, months: int) -> dt.date:
    month_index = day.year * 12 + day.month - 1 - months
    year, month = divmod(month_index, 12)
    month += 1
    last_day = [
        31,
        29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28,
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ][month - 1]
    return dt.date(year, month, min(day.day, last_day))


async def tariff_comparison(
    conn: Connection, catalog: TariffCatalog, account_no: str, months: int = 12
) -> dict[str, Any]:
    """Flat vs tiered over the account's own readings of the last `months` months (up to its latest
    reading): every interval between consecutive accepted readings ending in that window is rated
    both ways, with the household as it stood on each reading's date."""
    account = await load_account(conn, account_no)
    if account is None:
        raise AccountNotReady("account_not_found")
    readings = await load_readings(conn, account_no)
    household_now = None
    intervals: list[_Interval] = []
    if readings:
        last = readings[-1].reading_date
        window_start = _subtract_months(last, months)
        start = install_point(account.meters)
        points = ([start] if start else []) + [MeterReading(r.reading_date, r.value) for r in readings]
        for prev, cur in itertools.pairwise(points):
            if cur.date <= window_start:
                continue
            household = await household_on(conn, account_no, cur.date)
            meter = meter_on(account.meters, cur.date)
            if household is None or meter is None:
                continue
            household_now = household
            replacement = replacement_between(account.meters, prev.date, cur.date)
            totals: dict[TariffOption, RatingResult] = {}
            try:
                for option in ("flat", "tiered"):
                    attrs = AccountAttributes(
                        option,
                        household.residents,
                        household.electric_stove,
                        household.living_alone,
                        meter.digits,
                    )
                    totals[option] = rate(prev, cur, attrs, catalog, replacement)
            except RatingError:
                continue
            intervals.append(
                _Interval(
                    prev,
                    cur,
                    totals["flat"].total,
                    totals["tiered"].total,
                    totals["tiered"].fell_back_to_flat,
                    totals["flat"].consumption_kwh,
                )
            )
    flat = sum((i.flat_total for i in intervals), ZERO)
    tiered = sum((i.tiered_total for i in intervals), ZERO)
    tiered_available = bool(household_now and household_now.residents > 0)
    if not intervals:
        cheaper = None
    elif not tiered_available or flat == tiered:
        cheaper = "same" if tiered_available else "flat"
    else:
        cheaper = "flat" if flat < tiered else "tiered"
    return {
        "account_no": account_no,
        "months": months,
        "from": intervals[0].previous.date.isoformat() if intervals else None,
        "to": intervals[-1].current.date.isoformat() if intervals else None,
        "consumption_kwh": format_money(sum((i.consumption for i in intervals), ZERO)),
        "current_option": household_now.tariff_option if household_now else None,
        "tiered_available": tiered_available,
        "flat_total": format_money(flat),
        "tiered_total": format_money(tiered),
        "cheaper": cheaper,
        "savings": format_money(abs(flat - tiered)),
        "intervals": [
            {
                "from": i.previous.date.isoformat(),
                "to": i.current.date.isoformat(),
                "consumption_kwh": format_money(i.consumption),
                "flat_total": format_money(i.flat_total),
                "tiered_total": format_money(i.tiered_total),
            }
            for i in intervals
        ],
    }


async def consumption_by_month(
    conn: Connection, account_no: str, last_period: str, months: int
) -> list[dict[str, Any]]:
    """kWh per calendar month for the chart: actual charges spread over the months of their interval by
    days, plus the estimates not (yet) trued up, marked `estimated`."""
    periods = previous_periods(last_period, months)
    actual = dict.fromkeys(periods, ZERO)
    estimated = dict.fromkeys(periods, ZERO)
    for charge in await load_charges(conn, account_no):
        if charge.reversed:
            continue
        if charge.estimated:
            if charge.period in estimated:
                estimated[charge.period] += charge.consumption_kwh
            continue
        for period, kwh in spread_by_month(charge.from_date, charge.to_date, charge.consumption_kwh).items():
            if period in actual:
                actual[period] += kwh
    return [
        {
            "period": p,
            "consumption_kwh": format_money(actual[p] + estimated[p]),
            "estimated_kwh": format_money(estimated[p]),
            "estimated": estimated[p] > 0,
        }
        for p in periods
    ]
