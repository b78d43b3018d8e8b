"""What an account's charges must be, from the facts known now; and the corrections that make them so.

Messages reach the calculator late and out of order across topics (BACKOFFICE_EVENTS.md): a
ResidentsChanged, a TariffOptionChanged, a MeterReplaced, a tariff row or a VAT rate may arrive after a
reading dated after its effective date was already rated; an earlier reading may arrive after a period
was estimated from a history without it. The charges appended then are immutable events, so the final
state is made independent of the arrival order like this (pure functions, no I/O):

- A charge is always computed by the same function of the facts: `rate_reading_in_chain` for a
  reading's charge (RATING.md §4: from the previous accepted reading, with the household as it stands on
  the reading's date, the meters and the catalog) and `estimate_in_period` for an estimate (§6: the
  history of the actual readings before the period × the active days, else the tier-1 norm).
- `plan_adjustments` recomputes every actual charge and every open (not reversed) estimate of the
  account with the facts known now. Where the result's total differs from what was posted (the charge's
  total plus its earlier adjustments), it plans one adjustment of the difference, in the charge's own
  period, with a deterministic id (`adj{n}-{charge_id}`, n = 1, 2, ... per charge). Posted as a
  correction, the charges of every period end as if every fact had been known from the start, to the
  tiyn, whatever the order. Re-running it with nothing new plans nothing.
- An estimate reversed by an actual reading is settled (its posted total, adjustments included, was
  reversed) and is not recomputed.

The history behind estimates and the implausibility check is the chain of accepted readings
(`reading_history`): per period of the reading's date, Σ consumption and Σ days since the previous
reading. It is the same as the history of the actual charges (each accepted reading becomes one
charge with that consumption and those days), but it is known the moment a reading is accepted, not
when the rating stream gets to it, so a decision never depends on how far the rating stream has got.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from contracts.money import ZERO

from .billing import (
    Meter,
    install_point,
    meter_on,
    needs_estimate,
    period_bounds,
    period_of,
    period_start,
    replacement_between,
)
from .errors import RatingError
from .estimates import BilledMonth, estimate_for_period
from .rating import (
    AccountAttributes,
    MeterReading,
    RatedInterval,
    RatingResult,
    TariffOption,
    rate,
    rate_consumption,
)
from .tariffs import TariffCatalog

HOUSEHOLD_ATTRIBUTES = frozenset({"residents", "tariff_option", "electric_stove", "living_alone"})
# Digits of an account without a meter: `rate_consumption` (estimates) never reads them.
DEFAULT_DIGITS = 6


# --- the household as it stands on a day -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttributeRow:
    """One value of a rating attribute from a date on (accounts' AccountOpened / …Changed events)."""

    attribute: str
    effective_from: dt.date
    stream_version: int
    value: object


@dataclass(frozen=True, slots=True)
class Household:
    tariff_option: TariffOption
    residents: int
    electric_stove: bool
    living_alone: bool

    def attributes(self, meter_digits: int) -> AccountAttributes:
        return AccountAttributes(
            tariff_option=self.tariff_option,
            residents=self.residents,
            electric_stove=self.electric_stove,
            living_alone=self.living_alone,
            meter_digits=meter_digits,
        )


def household_on(rows: Iterable[AttributeRow], day: dt.date) -> Household | None:
    """The attributes as they stand on `day`: per attribute, the row with the latest `effective_from` on
    or before the day (the latest event among equal dates), else the earliest one (the opening values).
    None while an attribute is missing (before AccountOpened arrived)."""
    chosen: dict[str, AttributeRow] = {}
    for row in rows:
        best = chosen.get(row.attribute)
        if best is None or _better(row, best, day):
            chosen[row.attribute] = row
    if not chosen.keys() >= HOUSEHOLD_ATTRIBUTES:
        return None
    return Household(
        tariff_option="tiered" if chosen["tariff_option"].value == "tiered" else "flat",
        residents=int(str(chosen["residents"].value)),
        electric_stove=bool(chosen["electric_stove"].value),
        living_alone=bool(chosen["living_alone"].value),
    )


def _better(row: AttributeRow, best: AttributeRow, day: dt.date) -> bool:
    row_in, best_in = row.effective_from <= day, best.effective_from <= day
    if row_in != best_in:
        return row_in
    if row.effective_from != best.effective_from:
        # in force: the latest date wins; none in force yet: the earliest date (the opening values)
        return (row.effective_from > best.effective_from) == row_in
    return row.stream_version > best.stream_version


# --- the account's facts -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainReading:
    """An accepted reading, in the order readings were accepted (= date order)."""

    reading_id: str
    reading_date: dt.date
    value: Decimal
    consumption_kwh: Decimal | None = None


@dataclass(frozen=True, slots=True)
class AccountFacts:
    account_no: str
    opened_on: dt.date
    meters: tuple[Meter, ...]
    attributes: tuple[AttributeRow, ...]
    readings: tuple[ChainReading, ...]

    def household_on(self, day: dt.date) -> Household | None:
        return household_on(self.attributes, day)

    def digits(self) -> int:
        """The digits the estimates pass to the engine (unused by `rate_consumption`)."""
        return max(m.digits for m in self.meters) if self.meters else DEFAULT_DIGITS


def reading_history(facts: AccountFacts) -> list[BilledMonth]:
    """Per period of a reading's date: Σ consumption and Σ days since the previous accepted reading (the
    first from its meter's installation). The history of the actual charges, known at acceptance."""
    previous = install_point(facts.meters)
    kwh: dict[str, Decimal] = {}
    days: dict[str, int] = {}
    for reading in facts.readings:
        start = previous.date if previous is not None else None
        previous = MeterReading(reading.reading_date, reading.value)
        if start is None or reading.consumption_kwh is None:
            continue
        period = period_of(reading.reading_date)
        kwh[period] = kwh.get(period, ZERO) + reading.consumption_kwh
        days[period] = days.get(period, 0) + (reading.reading_date - start).days
    return [BilledMonth(period_start(p), kwh[p], days[p]) for p in sorted(kwh) if days[p] > 0]


def rate_reading_in_chain(facts: AccountFacts, index: int, catalog: TariffCatalog) -> RatingResult | None:
    """The charge of the `index`-th accepted reading (RATING.md §4, §6): rated from the previous accepted
    reading (the first from its first meter's installation), with the household as it stands on the
    reading's date and the meter it was taken on. None when that is not known (yet); raises `RatingError`
    when the engine refuses the interval."""
    reading = facts.readings[index]
    if index > 0:
        before = facts.readings[index - 1]
        previous: MeterReading | None = MeterReading(before.reading_date, before.value)
    else:
        previous = install_point(facts.meters)
    household = facts.household_on(reading.reading_date)
    meter = meter_on(facts.meters, reading.reading_date)
    if previous is None or household is None or meter is None:
        return None
    return rate(
        previous,
        MeterReading(reading.reading_date, reading.value),
        household.attributes(meter.digits),
        catalog,
        replacement_between(facts.meters, previous.date, reading.reading_date),
    )


def estimate_in_period(facts: AccountFacts, period: str, catalog: TariffCatalog) -> RatedInterval | None:
    """The estimated charge of a closed period (RATING.md §6), or None: the account was not active in it,
    has a reading dated in it (nothing to estimate), or has no household yet."""
    estimate, start, end = needs_estimate(period, facts.opened_on, (r.reading_date for r in facts.readings))
    if not estimate or start >= end:
        return None
    return estimate_over(facts, period, start, end, catalog)


def covering_reading(facts: AccountFacts, period: str) -> ChainReading | None:
    """The first accepted reading dated after the period: the one whose charge covers its days."""
    _, following = period_bounds(period)
    return next((r for r in facts.readings if r.reading_date >= following), None)


def estimate_over(
    facts: AccountFacts, period: str, start: dt.date, end: dt.date, catalog: TariffCatalog
) -> RatedInterval | None:
    """The estimate of `[start, end)` in `period`: the household on the period's last day, the history of
    the readings before the period (else the tier-1 norm)."""
    _, following = period_bounds(period)
    household = facts.household_on(following - dt.timedelta(days=1))
    if household is None:
        return None
    attrs = household.attributes(facts.digits())
    guess = estimate_for_period(
        reading_history(facts), period_start(period), (end - start).days, attrs, catalog
    )
    return rate_consumption(start, end, guess.kwh, attrs, catalog)


# --- what was posted, and what to correct ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PostedCharge:
    """A charge as posted: its total, and the adjustments posted for it since (`adjustments` of them)."""

    charge_id: str
    period: str
    estimated: bool
    reading_id: str | None
    from_date: dt.date
    to_date: dt.date
    total: Decimal
    adjusted: Decimal = ZERO
    adjustments: int = 0
    reversed: bool = False

    @property
    def posted_total(self) -> Decimal:
        return self.total + self.adjusted


@dataclass(frozen=True, slots=True)
class Adjustment:
    """A correction of a posted charge to what it must be now: `amount` = expected − posted total."""

    correction_id: str
    charge_id: str
    period: str
    amount: Decimal
    expected_total: Decimal


def adjustment_id(charge_id: str, number: int) -> str:
    return f"adj{number}-{charge_id}"


def adjusted_charge_id(correction_id: str) -> str | None:
    """The charge an adjustment's correction id corrects (None for any other correction id)."""
    head, sep, charge_id = correction_id.partition("-")
    if sep and head.startswith("adj") and head[3:].isdigit():
        return charge_id
    return None


def plan_adjustments(
    facts: AccountFacts, charges: Sequence[PostedCharge], catalog: TariffCatalog
) -> list[Adjustment]:
    """The corrections that bring every actual charge and open estimate to its value from today's facts.

    A charge that cannot be recomputed (its reading is gone from the chain, the engine refuses it now, the
    household is unknown) is left as it is.
    """
    index_of = {r.reading_id: i for i, r in enumerate(facts.readings)}
    planned: list[Adjustment] = []
    for charge in charges:
        expected: Decimal | None = None
        try:
            if not charge.estimated:
                index = index_of.get(charge.reading_id or "")
                if index is not None:
                    rated = rate_reading_in_chain(facts, index, catalog)
                    expected = rated.total if rated is not None else None
            elif not charge.reversed:
                start, end = charge.from_date, charge.to_date
                estimate = estimate_over(facts, charge.period, start, end, catalog) if start < end else None
                expected = estimate.total if estimate is not None else None
        except RatingError:
            expected = None
        if expected is None or expected == charge.posted_total:
            continue
        planned.append(
            Adjustment(
                correction_id=adjustment_id(charge.charge_id, charge.adjustments + 1),
                charge_id=charge.charge_id,
                period=charge.period,
                amount=expected - charge.posted_total,
                expected_total=expected,
            )
        )
    return planned


@dataclass(frozen=True, slots=True)
class MissingEstimate:
    """A billed period that has no estimate though it should (see `missing_estimates`)."""

    period: str
    rated: RatedInterval
    covered_by: ChainReading | None  # the already rated reading that covers its days: reverse it at once


def missing_estimates(
    facts: AccountFacts,
    billed_periods: Iterable[str],
    charges: Sequence[PostedCharge],
    catalog: TariffCatalog,
    estimate_id: Callable[[str], str],
) -> list[MissingEstimate]:
    """Billed periods without a reading dated in them and without their estimate.

    The billing run always estimates such a period now (a period closed late is estimated and its
    estimate reversed at once by the reading that covers it); an earlier version skipped a period closed
    after a later reading, so a history billed by it lacks the estimate. The reconciler adds it, as the
    run would have, so the months end the same whatever the order and whichever version billed them."""
    posted = {c.charge_id for c in charges}
    rated = {c.reading_id for c in charges if not c.estimated and c.reading_id is not None}
    dates = [r.reading_date for r in facts.readings]
    out: list[MissingEstimate] = []
    for period in sorted(set(billed_periods)):
        estimate, start, end = needs_estimate(period, facts.opened_on, dates)
        if not estimate or start >= end or estimate_id(period) in posted:
            continue
        try:
            interval = estimate_over(facts, period, start, end, catalog)
        except RatingError:
            continue
        if interval is None:
            continue
        covering = covering_reading(facts, period)
        out.append(
            MissingEstimate(period, interval, covering if covering and covering.reading_id in rated else None)
        )
    return out


def reversal_amount(estimates: Iterable[PostedCharge]) -> Decimal:
    """What an actual reading's true-up reverses: the posted totals of the estimates, adjustments included."""
    return -sum((c.posted_total for c in estimates), ZERO)


def estimates_to_true_up(charges: Iterable[PostedCharge], reading_period: str) -> list[PostedCharge]:
    """The open estimates an actual reading of `reading_period` trues up (periods up to its own)."""
    return sorted(
        (c for c in charges if c.estimated and not c.reversed and c.period <= reading_period),
        key=lambda c: (c.period, c.charge_id),
    )


def open_estimates_after(charges: Iterable[PostedCharge], period: str) -> list[PostedCharge]:
    """Open estimates of later periods: a new actual reading of `period` changes their history."""
    return [c for c in charges if c.estimated and not c.reversed and c.period > period]


__all__ = [
    "AccountFacts",
    "Adjustment",
    "AttributeRow",
    "ChainReading",
    "Household",
    "MissingEstimate",
    "PostedCharge",
    "adjusted_charge_id",
    "adjustment_id",
    "covering_reading",
    "estimate_in_period",
    "estimate_over",
    "estimates_to_true_up",
    "household_on",
    "missing_estimates",
    "open_estimates_after",
    "plan_adjustments",
    "rate_reading_in_chain",
    "reading_history",
    "reversal_amount",
]
