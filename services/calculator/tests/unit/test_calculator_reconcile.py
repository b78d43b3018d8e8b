"""Charges independent of the order facts arrive in (domain/reconcile.py): worked examples and a property.

The property feeds one account's facts — its readings (always in date order, as one partition keeps
them), attribute changes, a late tariff row and the period closings — in two random orders through a
pure model of what the service does with each (`Book`, built from the same domain functions the
service calls: `rate_reading_in_chain` for the rating stream, `needs_estimate`/`estimate_over`/
`covering_reading` for the billing run, `estimates_to_true_up`/`reversal_amount` for the true-up,
`plan_adjustments` for the reconciler), and asserts that the money posted ends equal to the tiyn: in
total, per actual charge, and in the estimates left open (periods no reading covers yet).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from calculator.domain.billing import (
    Meter,
    estimate_charge_id,
    needs_estimate,
    period_of,
    reading_charge_id,
)
from calculator.domain.estimates import BilledMonth
from calculator.domain.rating import MeterReading, rate
from calculator.domain.reconcile import (
    AccountFacts,
    AttributeRow,
    ChainReading,
    Household,
    PostedCharge,
    adjusted_charge_id,
    adjustment_id,
    covering_reading,
    estimate_in_period,
    estimate_over,
    estimates_to_true_up,
    household_on,
    missing_estimates,
    open_estimates_after,
    plan_adjustments,
    rate_reading_in_chain,
    reading_history,
    reversal_amount,
)
from calculator.domain.tariffs import TariffCatalog, TariffRow, seed_catalog
from contracts.money import ZERO

CATALOG = seed_catalog()
ACCOUNT = "100200300400"


def opening(
    day: date, *, residents: int = 2, option: str = "flat", stove: bool = False
) -> list[AttributeRow]:
    return [
        AttributeRow("residents", day, 1, residents),
        AttributeRow("tariff_option", day, 1, option),
        AttributeRow("electric_stove", day, 1, stove),
        AttributeRow("living_alone", day, 1, False),
    ]


def meter(installed_on: date, initial: str = "0.00", digits: int = 6) -> Meter:
    return Meter("M1", digits, installed_on, Decimal(initial), None, None)


def facts(
    opened_on: date,
    attributes: list[AttributeRow],
    readings: list[tuple[str, date, str]],
    initial: str = "0.00",
) -> AccountFacts:
    chain = []
    previous = Decimal(initial)
    for rid, day, value in readings:
        chain.append(ChainReading(rid, day, Decimal(value), Decimal(value) - previous))
        previous = Decimal(value)
    return AccountFacts(ACCOUNT, opened_on, (meter(opened_on, initial),), tuple(attributes), tuple(chain))


# --- worked examples ----------------------------------------------------------------------------------


def test_household_on_picks_the_row_in_force_else_the_opening_values() -> None:
    """Residents 2 from the opening (2025-01-01), 3 from 2025-06-01 (version 5), then on the same date
    a later event (version 7) says 4: that one wins for that date. Before the opening: the opening values."""
    rows = [
        *opening(date(2025, 1, 1)),
        AttributeRow("residents", date(2025, 6, 1), 5, 3),
        AttributeRow("residents", date(2025, 6, 1), 7, 4),
        AttributeRow("tariff_option", date(2025, 9, 1), 6, "tiered"),
    ]
    assert household_on(rows, date(2025, 5, 31)) == Household("flat", 2, False, False)
    assert household_on(rows, date(2025, 6, 1)) == Household("flat", 4, False, False)
    assert household_on(rows, date(2025, 9, 1)) == Household("tiered", 4, False, False)
    assert household_on(rows, date(2024, 12, 1)) == Household("flat", 2, False, False)
    no_stove = [r for r in rows if r.attribute != "electric_stove"]
    assert household_on(no_stove, date(2025, 6, 1)) is None  # an attribute missing: AccountOpened not here


def test_reading_history_is_the_history_of_the_actual_charges() -> None:
    """Installed 2025-05-01 at 1000. 2025-06-10: 1300 (300 kWh, 40 days); 2025-06-25: 1400 (100 kWh,
    15 days); 2025-07-20: 1600 (200 kWh, 25 days) → June 400 kWh over 55 days, July 200 over 25."""
    f = facts(
        date(2025, 5, 1),
        opening(date(2025, 5, 1)),
        [
            ("r1", date(2025, 6, 10), "1300"),
            ("r2", date(2025, 6, 25), "1400"),
            ("r3", date(2025, 7, 20), "1600"),
        ],
        initial="1000",
    )
    assert reading_history(f) == [
        BilledMonth(date(2025, 6, 1), Decimal("400"), 55),
        BilledMonth(date(2025, 7, 1), Decimal("200"), 25),
    ]


def test_a_late_residents_change_is_corrected_by_the_difference() -> None:
    """Tiered, no stove, installed 2025-08-01 at 0; read 2025-09-01 at 400 (31 days, 400 kWh, 2025 rates
    28.95 / 38.22 / 47.77, VAT 12%).

    Rated with 2 residents: L1 = 90 × 2 × 31 / 30.5 = 182.95, L2 = 160 × 2 × 31 / 30.5 = 325.25;
    182.95 × 28.95 = 5296.40, 142.30 × 38.22 = 5438.71, 74.75 × 47.77 = 3570.81; net 14305.92,
    VAT 1716.71, total 16022.63.
    Then ResidentsChanged (3 from 2025-08-15) arrives: on 2025-09-01 there are 3 residents, so
    L1 = 90 × 3 × 31 / 30.5 = 274.43, L2 = 487.87; 274.43 × 28.95 = 7944.75, 125.57 × 38.22 = 4799.29,
    tier 3 0; net 12744.04, VAT 1529.28, total 14273.32. Adjustment: 14273.32 − 16022.63 = −1749.31,
    in the charge's period (2025-09), id adj1-chg-r1. Planned again with nothing new: nothing.
    """
    day = date(2025, 8, 1)
    before = facts(day, opening(day, option="tiered"), [("r1", date(2025, 9, 1), "400")])
    rated = rate_reading_in_chain(before, 0, CATALOG)
    assert rated is not None and rated.total == Decimal("16022.63")
    assert [line.amount for line in rated.lines] == [
        Decimal("5296.40"),
        Decimal("5438.71"),
        Decimal("3570.81"),
    ]
    posted = PostedCharge(reading_charge_id("r1"), "2025-09", False, "r1", day, date(2025, 9, 1), rated.total)
    after = replace(
        before, attributes=(*before.attributes, AttributeRow("residents", date(2025, 8, 15), 2, 3))
    )
    [adjustment] = plan_adjustments(after, [posted], CATALOG)
    assert adjustment.correction_id == "adj1-chg-r1" and adjustment.period == "2025-09"
    assert (adjustment.amount, adjustment.expected_total) == (Decimal("-1749.31"), Decimal("14273.32"))
    settled = replace(posted, adjusted=adjustment.amount, adjustments=1)
    assert settled.posted_total == Decimal("14273.32")
    assert plan_adjustments(after, [settled], CATALOG) == []
    # A second late change is the second adjustment of that charge, of the new difference.
    again = replace(after, attributes=(*after.attributes, AttributeRow("tariff_option", day, 3, "flat")))
    [second] = plan_adjustments(again, [settled], CATALOG)
    assert second.correction_id == "adj2-chg-r1"
    # flat: 400 × 31.85 = 12740.00, VAT 1528.80 → 14268.80
    assert (second.expected_total, second.amount) == (
        Decimal("14268.80"),
        Decimal("14268.80") - Decimal("14273.32"),
    )


def test_an_open_estimate_follows_a_late_earlier_reading() -> None:
    """Opened 2025-05-01 at 1000, flat, 2 residents. June is closed before any reading: the tier-1 norm,
    90 × 2 × 30 / 30.5 = 177.05 kWh × 16.36 = 2896.54, VAT 347.58 → 3244.12. Then the reading of
    2025-05-31 (1310: 310 kWh over 30 days) arrives: it is before June, so June stays estimated, now from
    the history: 310 × 30 / 30 = 310.00 kWh × 16.36 = 5071.60, VAT 608.59 → 5680.19; adjustment
    5680.19 − 3244.12 = 2436.07. A reversed estimate is settled: never adjusted."""
    day = date(2025, 5, 1)
    without = facts(day, opening(day), [], initial="1000")
    estimate = estimate_in_period(without, "2025-06", CATALOG)
    assert estimate is not None and (estimate.consumption_kwh, estimate.total) == (
        Decimal("177.05"),
        Decimal("3244.12"),
    )
    posted = PostedCharge(
        estimate_charge_id(ACCOUNT, "2025-06"),
        "2025-06",
        True,
        None,
        date(2025, 6, 1),
        date(2025, 7, 1),
        estimate.total,
    )
    late = facts(day, opening(day), [("r1", date(2025, 5, 31), "1310")], initial="1000")
    assert open_estimates_after([posted], "2025-05") == [posted]
    [adjustment] = plan_adjustments(late, [posted], CATALOG)
    assert (adjustment.expected_total, adjustment.amount) == (Decimal("5680.19"), Decimal("2436.07"))
    assert plan_adjustments(late, [replace(posted, reversed=True)], CATALOG) == []


def test_the_true_up_reverses_what_was_posted_adjustments_included() -> None:
    a = PostedCharge(
        "est-1-2025-05", "2025-05", True, None, date(2025, 5, 1), date(2025, 6, 1), Decimal("100.00")
    )
    b = replace(a, charge_id="est-1-2025-06", period="2025-06", adjusted=Decimal("-12.34"), adjustments=1)
    c = replace(a, charge_id="est-1-2025-08", period="2025-08")
    assert estimates_to_true_up([c, b, a], "2025-07") == [a, b]
    assert reversal_amount([a, b]) == Decimal("-187.66")


def test_billed_periods_without_their_estimate_get_it() -> None:
    """Opened 2025-05-01 at 1000 (flat, 2 residents); one reading, 2025-07-10, rated. May, June and July
    were billed by a version that skipped May and June (closed after the July reading): they get their
    norm estimates now — May 90 × 2 × 31 / 30.5 = 182.95 kWh → 3352.23, June 177.05 kWh → 3244.12 — each
    to be reversed at once by the July reading that covers it. July has its reading; an estimate posted
    already is not added twice; a period billed before the reading was rated is estimated but not
    reversed (the reading's rating will do it)."""
    day = date(2025, 5, 1)
    f = facts(day, opening(day), [("r1", date(2025, 7, 10), "1420")], initial="1000")
    rated = PostedCharge("chg-r1", "2025-07", False, "r1", day, date(2025, 7, 10), Decimal("8632.58"))
    found = missing_estimates(f, ["2025-05", "2025-06", "2025-07"], [rated], CATALOG, lambda p: f"est-{p}")
    assert [(m.period, m.rated.consumption_kwh, m.rated.total) for m in found] == [
        ("2025-05", Decimal("182.95"), Decimal("3352.23")),
        ("2025-06", Decimal("177.05"), Decimal("3244.12")),
    ]
    assert all(m.covered_by is not None and m.covered_by.reading_id == "r1" for m in found)
    may = PostedCharge("est-2025-05", "2025-05", True, None, day, date(2025, 6, 1), Decimal("3352.23"))
    assert [
        m.period
        for m in missing_estimates(f, ["2025-05", "2025-06"], [rated, may], CATALOG, lambda p: f"est-{p}")
    ] == ["2025-06"]
    [unrated] = missing_estimates(f, ["2025-06"], [], CATALOG, lambda p: f"est-{p}")
    assert unrated.covered_by is None


def test_adjustment_ids() -> None:
    assert adjustment_id("chg-r1", 3) == "adj3-chg-r1"
    assert adjusted_charge_id("adj3-chg-r1") == "chg-r1"
    assert adjusted_charge_id("adj12-est-100200300400-2025-06") == "est-100200300400-2025-06"
    assert adjusted_charge_id("rev-r1") is None
    assert adjusted_charge_id("adjx-chg-r1") is None


# --- the property: two arrival orders, the same money ----------------------------------------------------


@dataclass
class Book:
    """What the service does with each fact of one account, synchronously (the rating stream rates an
    accepted reading at once; the reconciler runs when `reconcile()` is called)."""

    opened_on: date
    meters: tuple[Meter, ...]
    catalog: TariffCatalog
    attributes: list[AttributeRow]
    readings: list[ChainReading] = field(default_factory=list)
    charges: dict[str, PostedCharge] = field(default_factory=dict)
    corrections: list[Decimal] = field(default_factory=list)
    billed: set[str] = field(default_factory=set)

    def facts(self) -> AccountFacts:
        return AccountFacts(
            ACCOUNT, self.opened_on, self.meters, tuple(self.attributes), tuple(self.readings)
        )

    def reading(self, reading: ChainReading) -> None:
        self.readings.append(reading)
        rated = rate_reading_in_chain(self.facts(), len(self.readings) - 1, self.catalog)
        assert rated is not None
        period = period_of(reading.reading_date)
        cid = reading_charge_id(reading.reading_id)
        self.charges[cid] = PostedCharge(
            cid, period, False, reading.reading_id, rated.from_date, rated.to_date, rated.total
        )
        to_reverse = estimates_to_true_up(self.charges.values(), period)
        if to_reverse:
            self.corrections.append(reversal_amount(to_reverse))
            for c in to_reverse:
                self.charges[c.charge_id] = replace(c, reversed=True)

    def close(self, period: str) -> None:
        if period in self.billed:
            return
        estimate, start, end = needs_estimate(period, self.opened_on, (r.reading_date for r in self.readings))
        if start >= end:
            return
        cid = estimate_charge_id(ACCOUNT, period)
        if estimate and cid not in self.charges:
            rated = estimate_over(self.facts(), period, start, end, self.catalog)
            assert rated is not None
            self.charges[cid] = PostedCharge(cid, period, True, None, start, end, rated.total)
            if covering_reading(self.facts(), period) is not None:  # closed late: reversed at once
                self.corrections.append(-rated.total)
                self.charges[cid] = replace(self.charges[cid], reversed=True)
        self.billed.add(period)

    def reconcile(self) -> None:
        for adjustment in plan_adjustments(self.facts(), list(self.charges.values()), self.catalog):
            c = self.charges[adjustment.charge_id]
            assert adjustment.correction_id == adjustment_id(c.charge_id, c.adjustments + 1)
            self.corrections.append(adjustment.amount)
            self.charges[c.charge_id] = replace(
                c, adjusted=c.adjusted + adjustment.amount, adjustments=c.adjustments + 1
            )

    def total(self) -> Decimal:
        return sum((c.total for c in self.charges.values()), ZERO) + sum(self.corrections, ZERO)

    def open_estimates(self) -> dict[str, Decimal]:
        return {c.period: c.posted_total for c in self.charges.values() if c.estimated and not c.reversed}

    def actual(self) -> dict[str, Decimal]:
        return {c.charge_id: c.posted_total for c in self.charges.values() if not c.estimated}


Fact = tuple[str, object]


@st.composite
def accounts(draw: st.DrawFn) -> tuple[date, list[AttributeRow], list[Fact], list[Fact]]:
    opened = date(2025, draw(st.integers(1, 12)), draw(st.integers(1, 28)))
    attributes = opening(
        opened,
        residents=draw(st.integers(0, 5)),
        option=draw(st.sampled_from(["flat", "tiered"])),
        stove=draw(st.booleans()),
    )
    readings: list[Fact] = []
    day, value = opened, Decimal(0)
    for i in range(draw(st.integers(0, 5))):
        day += timedelta(days=draw(st.integers(8, 80)))
        used = Decimal(draw(st.integers(0, 90_000))) / 100
        readings.append(("reading", ChainReading(f"r{i}", day, value + used, used)))
        value += used
    last_day = day + timedelta(days=45)
    others: list[Fact] = []
    version = 1
    for _ in range(draw(st.integers(0, 3))):
        version += 1
        effective = opened + timedelta(days=draw(st.integers(0, max((last_day - opened).days, 0))))
        if draw(st.booleans()):
            others.append(("attr", AttributeRow("residents", effective, version, draw(st.integers(0, 6)))))
        else:
            others.append(
                (
                    "attr",
                    AttributeRow(
                        "tariff_option", effective, version, draw(st.sampled_from(["flat", "tiered"]))
                    ),
                )
            )
    if draw(st.booleans()):
        effective = opened + timedelta(days=draw(st.integers(1, max((last_day - opened).days, 1))))
        rates = [Decimal(draw(st.integers(1000, 6000))) / 100 for _ in range(4)]
        others.append(("tariff", TariffRow(effective, *rates)))
    month = date(opened.year, opened.month, 1)
    while month <= last_day:
        others.append(("close", period_of(month)))
        month = (month + timedelta(days=32)).replace(day=1)
    return opened, attributes, readings, others


def arrival(readings: list[Fact], others: list[Fact], rng: random.Random) -> list[Fact]:
    """A random interleaving: the other facts in any order; the readings in theirs."""
    others = others[:]
    rng.shuffle(others)
    slots = sorted(rng.sample(range(len(readings) + len(others)), len(readings)))
    out: list[Fact] = []
    r, o = iter(readings), iter(others)
    for i in range(len(readings) + len(others)):
        out.append(next(r) if i in slots else next(o))
    return out


def play(
    opened: date, attributes: list[AttributeRow], facts_in_order: list[Fact], rng: random.Random
) -> Book:
    book = Book(opened, (meter(opened),), CATALOG, list(attributes))
    for kind, fact in facts_in_order:
        if kind == "reading":
            assert isinstance(fact, ChainReading)
            book.reading(fact)
            if (
                open_estimates_after(book.charges.values(), period_of(fact.reading_date))
                and rng.random() < 0.5
            ):
                book.reconcile()
        elif kind == "attr":
            assert isinstance(fact, AttributeRow)
            book.attributes.append(fact)
        elif kind == "tariff":
            assert isinstance(fact, TariffRow)
            book.catalog = book.catalog.with_tariff_row(fact)
        else:
            assert isinstance(fact, str)
            book.close(fact)
        if kind in ("attr", "tariff") and rng.random() < 0.5:
            book.reconcile()  # the reconciler may run at any time after a request
    book.reconcile()  # ... and eventually does
    return book


@settings(max_examples=200, deadline=None)
@given(accounts(), st.randoms(use_true_random=False), st.randoms(use_true_random=False))
def test_the_same_facts_in_any_order_post_the_same_money(
    account: tuple[date, list[AttributeRow], list[Fact], list[Fact]],
    first: random.Random,
    second: random.Random,
) -> None:
    opened, attributes, readings, others = account
    one = play(opened, attributes, arrival(readings, others, first), first)
    two = play(opened, attributes, arrival(readings, others, second), second)
    assert one.total() == two.total()
    assert one.actual() == two.actual()
    assert one.open_estimates() == two.open_estimates()
    # ... and both equal the charges rated with every fact known from the start.
    final = AccountFacts(ACCOUNT, opened, (meter(opened),), tuple(one.attributes), tuple(one.readings))
    expected = {
        reading_charge_id(r.reading_id): rated.total
        for i, r in enumerate(final.readings)
        if (rated := rate_reading_in_chain(final, i, one.catalog)) is not None
    }
    assert one.actual() == expected


def test_the_ci_case_one_charge_over_four_months_is_not_four_charges() -> None:
    """Why a lost reading shows as a tiyn (CI: 58533.43 vs 58533.42): tiered, 5 residents with a stove,
    installed 2026-06-25 at 6924; read 07-18, 08-22, 09-26, 10-24 (the seed e2e's account 3). Rated as
    four charges the total is 58533.42; the same consumption rated as one interval (the first three
    readings lost) is 58533.43, only by rounding. The readings were lost to parking (fixed in the ingress),
    not to rating; rating itself is order-independent (the property above)."""
    day = date(2026, 6, 25)
    f = facts(
        day,
        opening(day, residents=5, option="tiered", stove=True),
        [
            ("a", date(2026, 7, 18), "7226"),
            ("b", date(2026, 8, 22), "7763"),
            ("c", date(2026, 9, 26), "8252"),
            ("d", date(2026, 10, 24), "8667"),
        ],
        initial="6924",
    )
    f = replace(f, meters=(meter(day, "6924", digits=5),))
    four = [rate_reading_in_chain(f, i, CATALOG) for i in range(4)]
    assert sum((r.total for r in four if r is not None), ZERO) == Decimal("58533.42")
    attrs = Household("tiered", 5, True, False).attributes(5)
    one = rate(
        MeterReading(day, Decimal("6924")), MeterReading(date(2026, 10, 24), Decimal("8667")), attrs, CATALOG
    )
    assert one.total == Decimal("58533.43")
