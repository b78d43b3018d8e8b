"""Estimated consumption for the monthly billing run (RATING.md §6). Pure helpers.

- The average daily consumption is over the account's last three billed months: `Σ kWh / Σ days`
  of the (up to) three most recent `BilledMonth`s before the period being estimated. Choice: an
  account with one or two billed months uses those ("when it has them" is read as "when it has any");
  with none there is no average.
- The estimate of a period is `average × active days`, else (no history) the tier-1 norm of the
  household × residents prorated by `active days / 30.5`. It is computed as one division
  (`Σ kWh × active days / Σ days`, `norm × n × active days / 30.5`) and rounded half-up to 0.01 kWh
  once, so the average is never pre-rounded.
- The estimated kWh is then rated with `rating.rate_consumption` over the period's active days.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from contracts.money import ZERO

from .quantities import divide, prorate
from .rating import AccountAttributes
from .tariffs import DAYS_PER_NORM_MONTH, TariffCatalog

HISTORY_MONTHS = 3


@dataclass(frozen=True, slots=True)
class BilledMonth:
    """A billed month of an account: its first day, the kWh billed for it, and the days it covers."""

    period: dt.date
    kwh: Decimal
    days: int


@dataclass(frozen=True, slots=True)
class Estimate:
    """An estimated consumption: kWh (0.01), and whether it came from the history or the norm."""

    kwh: Decimal
    basis: Literal["average", "norm"]
    active_days: int
    average_daily_kwh: Decimal | None


def month_bounds(period: dt.date) -> tuple[dt.date, dt.date]:
    """`[first day, first day of the next month)` of the calendar month containing `period`."""
    first = period.replace(day=1)
    following = dt.date(first.year + 1, 1, 1) if first.month == 12 else first.replace(month=first.month + 1)
    return first, following


def active_days(
    period_start: dt.date, period_end: dt.date, opened_on: dt.date, closed_on: dt.date | None = None
) -> int:
    """Days of `[period_start, period_end)` on which the account is active, `[opened_on, closed_on)`.

    `closed_on` is the first day the account is no longer active (None: still active).
    """
    start = max(period_start, opened_on)
    end = period_end if closed_on is None else min(period_end, closed_on)
    return max((end - start).days, 0)


def last_billed_months(
    history: Iterable[BilledMonth], before: dt.date | None = None, count: int = HISTORY_MONTHS
) -> tuple[BilledMonth, ...]:
    """The `count` most recent billed months (newest first) whose period is before `before`."""
    eligible = sorted(
        (m for m in history if before is None or m.period < before),
        key=lambda m: m.period,
        reverse=True,
    )
    return tuple(eligible[:count])


def average_daily_kwh(
    history: Iterable[BilledMonth], before: dt.date | None = None, months: int = HISTORY_MONTHS
) -> Decimal | None:
    """`Σ kWh / Σ days` over the last `months` billed months before `before`; None without history.

    Not rounded: it feeds the implausibility check and the estimate, which round once themselves.
    """
    recent = last_billed_months(history, before, months)
    total_days = sum(m.days for m in recent)
    if total_days <= 0:
        return None
    return divide(sum((m.kwh for m in recent), ZERO), total_days)


def estimate_kwh(
    history: Iterable[BilledMonth],
    days_active: int,
    residents: int,
    tier1_norm: Decimal,
    before: dt.date | None = None,
) -> Estimate:
    """The estimated kWh for `days_active` days (RATING.md §6), rounded half-up to 0.01 kWh."""
    recent = last_billed_months(history, before)
    total_days = sum(m.days for m in recent)
    if total_days > 0:
        total_kwh = sum((m.kwh for m in recent), ZERO)
        return Estimate(
            kwh=prorate(total_kwh, days_active, total_days),
            basis="average",
            active_days=days_active,
            average_daily_kwh=divide(total_kwh, total_days),
        )
    return Estimate(
        kwh=prorate(tier1_norm * residents, days_active, DAYS_PER_NORM_MONTH),
        basis="norm",
        active_days=days_active,
        average_daily_kwh=None,
    )


def estimate_for_period(
    history: Iterable[BilledMonth],
    period: dt.date,
    days_active: int,
    attrs: AccountAttributes,
    catalog: TariffCatalog,
) -> Estimate:
    """The estimate for the calendar month of `period`, with the household's tier-1 norm in force on its first day."""
    first, _ = month_bounds(period)
    norm = catalog.norms_on(first).for_household(attrs.electric_stove, attrs.living_alone)
    return estimate_kwh(history, days_active, attrs.residents, norm.tier1, before=first)
