"""Property tests of the rating engine (RATING.md §4) over the seed catalog.

The split allowance (test_split_without_tariff_change_stays_within_rounding_allowance)
------------------------------------------------------------------------------------
Take one piece `[a, b)` of `d` days with no change date inside (rates `r1 ≤ r2 ≤ r3`, flat `r`, VAT `v`)
and a catalog with an extra row identical to the one in force, dated `s` with `a < s < b`. The piece is
then cut into `d1 + d2 = d` days, and

- allocation: `q1 = q·d1/d + δ` with `|δ| ≤ 0.005`, `q2 = q − q1 = q·d2/d − δ`;
- limits, for either cumulative norm `N` (`λ = N·n/30.5` kWh per day): `L = λd + η`,
  `La = λd1 + ηa`, `Lb = λd2 + ηb`, each `|η| ≤ 0.005`.

The kWh billed up to a cumulative bound is `min(q, L)` (tier 1 up to `L1`; tiers 1+2 up to `L2`,
because tier1 + min(q − tier1, L2 − L1) = min(q, L2) when L1 ≤ L2). Since `min` moves by at most
the larger of its arguments' moves, `|min(q1, La) − (d1/d)·min(q, λd)| ≤ 0.005`, the same for the
second piece, and `|min(q, L) − min(q, λd)| ≤ 0.005`. So the cumulative kWh `c1` (up to L1) and `c2`
(up to L2) change by at most 0.015, that is by at most 0.01 as they are multiples of 0.01.

The unrounded net is `E = q·r3 − c1·(r2 − r1) − c2·(r3 − r2)`, so `|ΔE| ≤ 0.01·(|r2 − r1| + |r3 − r2|)`.
Each line amount is rounded (±0.005): 3 lines before, 6 after, so
    |Δnet| ≤ 0.01·(|r2 − r1| + |r3 − r2|) + 9 × 0.005   (tiered)
    |Δnet| ≤ 3 × 0.005                                  (flat: one line before, two after)
floored to a multiple of 0.01. VAT is `net·v` plus one rounding per piece (1 before, 2 after):
    |Δtotal| = |Δnet·(1 + v) + Δ(VAT rounding)| ≤ |Δnet|·(1 + v) + 3 × 0.005,
again floored to 0.01. With the seed catalog:
    2018 rates, 12%: tiered net ≤ 0.14, total ≤ 0.17;   2025 rates, 12%: net ≤ 0.23, total ≤ 0.27;
    2025 rates, 16%: net ≤ 0.23, total ≤ 0.28;          flat, any: net ≤ 0.01, total ≤ 0.02.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import ROUND_FLOOR, Decimal

from hypothesis import assume, given, settings, target
from hypothesis import strategies as st

from calculator.domain.rating import (
    AccountAttributes,
    MeterReading,
    RatedInterval,
    TariffOption,
    rate,
    rate_consumption,
)
from calculator.domain.tariffs import TariffCatalog, TariffRow, seed_catalog
from contracts.money import TIYN, round_half_up

CATALOG = seed_catalog()
FIRST_DAY = date(2018, 3, 1)
LAST_DAY = date(2028, 12, 31)
HALF_TIYN = Decimal("0.005")

# Stretches of the seed catalog with no change date inside: [start, end).
REGIMES: tuple[tuple[date, date], ...] = (
    (date(2018, 3, 1), date(2025, 7, 1)),
    (date(2025, 7, 1), date(2026, 1, 1)),
    (date(2026, 1, 1), LAST_DAY),
)

PROPERTY_SETTINGS = settings(max_examples=400, deadline=None)


@dataclass(frozen=True)
class Scenario:
    start: date
    end: date
    attrs: AccountAttributes
    q: Decimal


def kwh(tiyn: int) -> Decimal:
    return Decimal(tiyn).scaleb(-2)


account_attributes = st.builds(
    AccountAttributes,
    tariff_option=st.sampled_from(["flat", "tiered", "tiered"]),
    residents=st.integers(0, 8),
    electric_stove=st.booleans(),
    living_alone=st.booleans(),
    meter_digits=st.integers(6, 9),
)


@st.composite
def consumptions(draw: st.DrawFn, start: date, end: date, attrs: AccountAttributes) -> Decimal:
    """Any kWh, or one right at a tier bound of the whole interval (where rounding matters most)."""
    if draw(st.booleans()):
        return kwh(draw(st.integers(0, 5_000_000)))
    norm = CATALOG.norms.for_household(attrs.electric_stove, attrs.living_alone)
    bound = draw(st.sampled_from(norm.limits(attrs.residents, (end - start).days)))
    return max(Decimal(0), bound + kwh(draw(st.integers(-300, 300))))


@st.composite
def scenarios(draw: st.DrawFn, max_days: int = 800) -> Scenario:
    start = FIRST_DAY + timedelta(days=draw(st.integers(0, (LAST_DAY - FIRST_DAY).days - max_days)))
    end = start + timedelta(days=draw(st.integers(1, max_days)))
    attrs = draw(account_attributes)
    return Scenario(start, end, attrs, draw(consumptions(start, end, attrs)))


def rated(s: Scenario, q: Decimal | None = None, catalog: TariffCatalog = CATALOG) -> RatedInterval:
    return rate_consumption(s.start, s.end, s.q if q is None else q, s.attrs, catalog)


# --- kWh -------------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(scenarios())
def test_line_kwh_sum_exactly_to_consumption(s: Scenario) -> None:
    result = rated(s)
    assert sum((line.kwh for line in result.lines), Decimal(0)) == s.q == result.consumption_kwh
    assert sum((p.kwh for p in result.pieces), Decimal(0)) == s.q
    for piece in result.pieces:
        assert sum((line.kwh for line in piece.lines), Decimal(0)) == piece.kwh
    assert all(line.kwh >= 0 and line.kwh == round_half_up(line.kwh) for line in result.lines)


@PROPERTY_SETTINGS
@given(scenarios())
def test_tier_lines_never_exceed_their_limits(s: Scenario) -> None:
    result = rated(s)
    for piece in result.pieces:
        if result.tariff_option_applied == "flat":
            assert [line.tier for line in piece.lines] == ["flat"]
            continue
        tier1, tier2, tier3 = piece.lines
        assert (tier1.tier, tier2.tier, tier3.tier) == ("1", "2", "3")
        assert tier1.limit_kwh is not None and tier2.limit_kwh is not None and tier3.limit_kwh is None
        assert tier1.kwh <= tier1.limit_kwh
        assert tier1.kwh + tier2.kwh <= tier2.limit_kwh
        # Tiers fill in order: a higher tier is used only once the lower ones are full.
        if tier2.kwh > 0:
            assert tier1.kwh == tier1.limit_kwh
        if tier3.kwh > 0:
            assert tier1.kwh + tier2.kwh == tier2.limit_kwh


@PROPERTY_SETTINGS
@given(scenarios())
def test_pieces_cover_the_interval_and_cut_only_at_change_dates(s: Scenario) -> None:
    result = rated(s)
    cuts = [p.from_date for p in result.pieces[1:]]
    assert cuts == list(CATALOG.change_dates_between(s.start, s.end))
    assert result.pieces[0].from_date == s.start and result.pieces[-1].to_date == s.end
    for earlier, later in zip(result.pieces, result.pieces[1:], strict=False):
        assert earlier.to_date == later.from_date
    assert sum(p.days for p in result.pieces) == result.days == (s.end - s.start).days
    for piece in result.pieces:
        assert piece.tariff_effective_from == CATALOG.tariff_on(piece.from_date).effective_from
        assert piece.vat_rate == CATALOG.vat_on(piece.from_date).rate


# --- money -----------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(scenarios())
def test_money_identities(s: Scenario) -> None:
    result = rated(s)
    for line in result.lines:
        assert line.amount == round_half_up(line.kwh * line.rate)
    for piece in result.pieces:
        assert piece.net == sum((line.amount for line in piece.lines), Decimal(0))
        assert piece.vat == round_half_up(piece.net * piece.vat_rate)
    assert result.net_total == sum((line.amount for line in result.lines), Decimal(0))
    assert result.vat == sum((p.vat for p in result.pieces), Decimal(0))
    assert result.total == result.net_total + result.vat
    for amount in (result.net_total, result.vat, result.total):
        assert amount == amount.quantize(TIYN)


@PROPERTY_SETTINGS
@given(scenarios(), st.integers(0, 200_000), st.booleans())
def test_total_is_monotonic_in_consumption(s: Scenario, extra_tiyn: int, one_step: bool) -> None:
    """q ≤ q' ⇒ total(q) ≤ total(q'), checked on one-tiyn steps (where roundings collide) and wider ones."""
    more = s.q + (Decimal("0.01") if one_step else kwh(extra_tiyn))
    low, high = rated(s), rated(s, more)
    assert low.total <= high.total
    assert low.net_total <= high.net_total


# --- splitting without a tariff change ---------------------------------------------------------------


def floor_tiyn(value: Decimal) -> Decimal:
    return value.quantize(TIYN, rounding=ROUND_FLOOR)


def split_allowance(row: TariffRow, vat_rate: Decimal, option: TariffOption) -> tuple[Decimal, Decimal]:
    """`(net bound, total bound)` of one piece cut in two, derived in the module docstring."""
    if option == "flat":
        raw_net = 3 * HALF_TIYN
    else:
        raw_net = TIYN * (abs(row.tier2 - row.tier1) + abs(row.tier3 - row.tier2)) + 9 * HALF_TIYN
    net_bound = floor_tiyn(raw_net)
    return net_bound, floor_tiyn(net_bound * (1 + vat_rate) + 3 * HALF_TIYN)


def test_split_allowance_of_the_seed_catalog() -> None:
    """The numbers quoted in the module docstring."""
    row_2018, row_2025 = CATALOG.rows
    twelve, sixteen = Decimal("0.12"), Decimal("0.16")
    assert split_allowance(row_2018, twelve, "tiered") == (Decimal("0.14"), Decimal("0.17"))
    assert split_allowance(row_2025, twelve, "tiered") == (Decimal("0.23"), Decimal("0.27"))
    assert split_allowance(row_2025, sixteen, "tiered") == (Decimal("0.23"), Decimal("0.28"))
    assert split_allowance(row_2025, sixteen, "flat") == (Decimal("0.01"), Decimal("0.02"))


@st.composite
def split_scenarios(draw: st.DrawFn) -> tuple[Scenario, date]:
    regime_start, regime_end = draw(st.sampled_from(REGIMES))
    span = min((regime_end - regime_start).days, 400)
    length = draw(st.integers(2, span))
    start = regime_start + timedelta(days=draw(st.integers(0, (regime_end - regime_start).days - length)))
    end = start + timedelta(days=length)
    split = start + timedelta(days=draw(st.integers(1, length - 1)))
    attrs = draw(account_attributes)
    return Scenario(start, end, attrs, draw(consumptions(start, end, attrs))), split


@settings(max_examples=1000, deadline=None)
@given(split_scenarios())
def test_split_without_tariff_change_stays_within_rounding_allowance(case: tuple[Scenario, date]) -> None:
    s, split = case
    row = CATALOG.tariff_on(s.start)
    split_catalog = CATALOG.with_tariff_row(replace(row, effective_from=split))
    assert CATALOG.change_dates_between(s.start, s.end) == ()
    assert split_catalog.change_dates_between(s.start, s.end) == (split,)

    whole, cut = rated(s), rated(s, catalog=split_catalog)
    assert len(whole.pieces) == 1 and len(cut.pieces) == 2
    net_bound, total_bound = split_allowance(row, CATALOG.vat_on(s.start).rate, whole.tariff_option_applied)
    total_difference = abs(cut.total - whole.total)
    target(int(total_difference * 100), label="total difference in tiyn")
    assert abs(cut.net_total - whole.net_total) <= net_bound
    assert total_difference <= total_bound


# --- from readings -----------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(scenarios(max_days=400), st.integers(0, 99_999_999))
def test_rating_readings_rates_their_difference(s: Scenario, previous_tiyn: int) -> None:
    """`rate` is `rate_consumption` of `new − previous`, or of `10^digits − previous + new` across a rollover."""
    capacity = Decimal(10) ** s.attrs.meter_digits
    previous = kwh(previous_tiyn) % capacity
    new = (previous + s.q) % capacity
    rolled_over = new < previous
    assume(not rolled_over or (previous >= Decimal("0.9") * capacity and new < Decimal("0.1") * capacity))
    result = rate(MeterReading(s.start, previous), MeterReading(s.end, new), s.attrs, CATALOG)
    assert result.rollover == rolled_over
    assert result.consumption_kwh == s.q
    assert result.lines == rated(s).lines
    assert result.total == rated(s).total
