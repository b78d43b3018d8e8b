"""Estimates for the monthly billing run (RATING.md §6), computed by hand."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from calculator.domain.estimates import (
    BilledMonth,
    active_days,
    average_daily_kwh,
    estimate_for_period,
    estimate_kwh,
    last_billed_months,
    month_bounds,
)
from calculator.domain.rating import AccountAttributes, rate_consumption
from calculator.domain.tariffs import seed_catalog

CATALOG = seed_catalog()
HISTORY = (
    BilledMonth(date(2025, 5, 1), Decimal("9999.00"), 31),  # the fourth most recent: ignored
    BilledMonth(date(2025, 6, 1), Decimal("300.00"), 30),
    BilledMonth(date(2025, 7, 1), Decimal("310.00"), 31),
    BilledMonth(date(2025, 8, 1), Decimal("372.00"), 31),
)
SEPTEMBER = date(2025, 9, 1)


def household(residents: int = 2, *, stove: bool = False, alone: bool = False) -> AccountAttributes:
    return AccountAttributes("flat", residents, stove, alone, 6)


def test_average_over_the_last_three_billed_months() -> None:
    """(300 + 310 + 372) / (30 + 31 + 31) = 982 / 92 = 10.673913… kWh/day (May is the 4th: ignored)."""
    average = average_daily_kwh(HISTORY, before=SEPTEMBER)
    assert average is not None
    assert average.quantize(Decimal("0.000001")) == Decimal("10.673913")
    assert [m.period.month for m in last_billed_months(HISTORY, SEPTEMBER)] == [8, 7, 6]


def test_months_from_the_period_on_are_not_history() -> None:
    """Before 2025-08-01 the last three are May, June, July: (9999 + 300 + 310) / 92 = 115.3152… kWh/day."""
    average = average_daily_kwh(HISTORY, before=date(2025, 8, 1))
    assert average is not None
    assert average.quantize(Decimal("0.0001")) == Decimal("115.3152")


def test_no_history_no_average() -> None:
    assert average_daily_kwh((), before=SEPTEMBER) is None


def test_estimate_from_history_full_month() -> None:
    """September, 30 active days: 982 × 30 / 92 = 29460 / 92 = 320.2173… → 320.22 kWh."""
    estimate = estimate_for_period(HISTORY, SEPTEMBER, 30, household(), CATALOG)
    assert estimate.basis == "average"
    assert estimate.kwh == Decimal("320.22")


def test_estimate_from_history_partial_month() -> None:
    """Active 10 days: 982 × 10 / 92 = 106.7391… → 106.74 kWh."""
    assert estimate_for_period(HISTORY, SEPTEMBER, 10, household(), CATALOG).kwh == Decimal("106.74")


def test_estimate_from_one_billed_month() -> None:
    """Only July billed (310 kWh / 31 days = 10 kWh/day): 30 days → 300.00 kWh."""
    history = (BilledMonth(date(2025, 7, 1), Decimal("310"), 31),)
    assert estimate_kwh(history, 30, 2, Decimal("90"), before=SEPTEMBER).kwh == Decimal("300.00")


def test_estimate_from_norm_without_history() -> None:
    """No history: tier-1 norm × residents × days / 30.5.

    no stove, n = 2, 30 days: 90 × 2 × 30 / 30.5 = 5400 / 30.5 = 177.0491… → 177.05
    no stove, n = 2, 10 days: 1800 / 30.5 = 59.0163… → 59.02
    living alone with stove, n = 1, 30 days: 140 × 30 / 30.5 = 137.7049… → 137.70
    no residents: 0.00
    """
    assert estimate_for_period((), SEPTEMBER, 30, household(2), CATALOG).kwh == Decimal("177.05")
    assert estimate_for_period((), SEPTEMBER, 10, household(2), CATALOG).kwh == Decimal("59.02")
    single = household(1, stove=True, alone=True)
    estimate = estimate_for_period((), SEPTEMBER, 30, single, CATALOG)
    assert (estimate.kwh, estimate.basis, estimate.average_daily_kwh) == (Decimal("137.70"), "norm", None)
    assert estimate_for_period((), SEPTEMBER, 30, household(0), CATALOG).kwh == Decimal("0.00")


def test_estimated_kwh_is_rated_like_any_consumption() -> None:
    """320.22 kWh over September 2025 on flat: 320.22 × 31.85 = 10199.007 → 10199.01;
    VAT 10199.01 × 0.12 = 1223.8812 → 1223.88;  total 11422.89.
    """
    result = rate_consumption(SEPTEMBER, date(2025, 10, 1), Decimal("320.22"), household(), CATALOG)
    assert (result.net_total, result.vat, result.total) == (
        Decimal("10199.01"),
        Decimal("1223.88"),
        Decimal("11422.89"),
    )


def test_active_days() -> None:
    start, end = month_bounds(SEPTEMBER)
    assert (start, end) == (date(2025, 9, 1), date(2025, 10, 1))
    assert active_days(start, end, date(2020, 1, 1)) == 30
    assert active_days(start, end, date(2025, 9, 21)) == 10  # opened on the 21st: 21..30
    assert active_days(start, end, date(2020, 1, 1), date(2025, 9, 11)) == 10  # closed from the 11th
    assert active_days(start, end, date(2025, 10, 5)) == 0
    assert month_bounds(date(2025, 12, 17)) == (date(2025, 12, 1), date(2026, 1, 1))
