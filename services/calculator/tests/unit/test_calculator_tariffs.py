"""The tariff catalog as data (RATING.md §2-§3)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from calculator.domain.errors import CatalogError
from calculator.domain.rating import AccountAttributes, rate_consumption
from calculator.domain.tariffs import (
    TariffCatalog,
    TariffRow,
    TierNorm,
    TierNorms,
    VatRate,
    catalog_from_data,
    catalog_to_data,
    seed_catalog,
)

CATALOG = seed_catalog()


def test_seed_catalog_is_rating_md_section_3() -> None:
    rows = [(r.effective_from, r.flat, r.tier1, r.tier2, r.tier3) for r in CATALOG.rows]
    assert rows == [
        (date(2018, 3, 1), Decimal("16.36"), Decimal("14.87"), Decimal("19.63"), Decimal("24.54")),
        (date(2025, 7, 1), Decimal("31.85"), Decimal("28.95"), Decimal("38.22"), Decimal("47.77")),
    ]
    assert [(v.effective_from, v.rate) for v in CATALOG.vat_rates] == [
        (date(2009, 1, 1), Decimal("0.12")),
        (date(2026, 1, 1), Decimal("0.16")),
    ]


@pytest.mark.parametrize(
    ("stove", "alone", "tier1", "tier2"),
    [(False, False, 90, 160), (True, False, 115, 190), (False, True, 115, 160), (True, True, 140, 190)],
)
def test_seed_norms_are_rating_md_section_2(stove: bool, alone: bool, tier1: int, tier2: int) -> None:
    norm = CATALOG.norms.for_household(stove, alone)
    assert (norm.tier1, norm.tier2) == (Decimal(tier1), Decimal(tier2))
    # over exactly 61 days = 2 × 30.5, the limits are twice the norm per resident
    assert norm.limits(3, 61) == (Decimal(tier1 * 6), Decimal(tier2 * 6))


def test_rows_apply_from_their_date_until_the_next() -> None:
    assert CATALOG.tariff_on(date(2018, 3, 1)).flat == Decimal("16.36")
    assert CATALOG.tariff_on(date(2025, 6, 30)).flat == Decimal("16.36")
    assert CATALOG.tariff_on(date(2025, 7, 1)).flat == Decimal("31.85")
    assert CATALOG.tariff_on(date(2030, 1, 1)).flat == Decimal("31.85")
    assert CATALOG.vat_on(date(2025, 12, 31)).rate == Decimal("0.12")
    assert CATALOG.vat_on(date(2026, 1, 1)).rate == Decimal("0.16")


def test_no_row_in_force() -> None:
    with pytest.raises(CatalogError) as caught:
        CATALOG.tariff_on(date(2018, 2, 28))
    assert caught.value.code == "no_tariff_in_force"
    assert "2018-02-28" in caught.value.message_ru
    with pytest.raises(CatalogError) as caught:
        CATALOG.vat_on(date(2008, 12, 31))
    assert caught.value.code == "no_vat_in_force"


def test_change_dates_strictly_between() -> None:
    between = CATALOG.change_dates_between
    assert between(date(2025, 6, 1), date(2026, 2, 1)) == (date(2025, 7, 1), date(2026, 1, 1))
    assert between(date(2025, 7, 1), date(2026, 1, 1)) == ()  # both ends excluded
    assert between(date(2025, 6, 30), date(2025, 7, 2)) == (date(2025, 7, 1),)
    assert between(date(2025, 7, 2), date(2025, 7, 1)) == ()
    assert between(date(2008, 1, 1), date(2019, 1, 1)) == (date(2009, 1, 1), date(2018, 3, 1))


def test_with_rows_adds_or_replaces() -> None:
    row = replace(CATALOG.rows[1], effective_from=date(2027, 1, 1), flat=Decimal("40.00"))
    extended = CATALOG.with_tariff_row(row)
    assert extended.tariff_on(date(2027, 1, 1)).flat == Decimal("40.00")
    republished = extended.with_tariff_row(replace(row, flat=Decimal("41.00")))
    assert len(republished.rows) == 3
    assert republished.tariff_on(date(2027, 6, 1)).flat == Decimal("41.00")
    vat = CATALOG.with_vat_rate(VatRate(date(2026, 1, 1), Decimal("0.15")))
    assert vat.vat_on(date(2026, 5, 1)).rate == Decimal("0.15")
    assert CATALOG.tariff_on(date(2027, 1, 1)).flat == Decimal("31.85")  # the original is unchanged


def test_catalog_round_trips_through_data() -> None:
    data = catalog_to_data(CATALOG)
    assert catalog_from_data(json.loads(json.dumps(data))) == CATALOG


def test_row_with_its_own_norms() -> None:
    """A TariffPublished row carrying norms rates its pieces with them: no stove tier 1 = 100 from 2027.

    n = 1, 2027-01-01 → 2027-03-03 = 61 days: L1 = 100 × 61 / 30.5 = 200.00 (not 180.00).
    """
    norms = TierNorms(
        tuple(
            TierNorm(n.electric_stove, n.living_alone, Decimal("100") if n.tier1 == 90 else n.tier1, n.tier2)
            for n in CATALOG.norms.rows
        )
    )
    catalog = CATALOG.with_tariff_row(replace(CATALOG.rows[1], effective_from=date(2027, 1, 1), norms=norms))
    attrs = AccountAttributes("tiered", 1, False, False, 6)
    result = rate_consumption(date(2027, 1, 1), date(2027, 3, 3), Decimal("250"), attrs, catalog)
    assert result.lines[0].limit_kwh == Decimal("200.00")
    assert catalog.norms_on(date(2026, 12, 31)) == CATALOG.norms


def _seed_data() -> dict[str, Any]:
    return catalog_to_data(CATALOG)


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda d: d["tariffs"].append(dict(d["tariffs"][0])),  # two rows on one date
        lambda d: d["vat_rates"].append(dict(d["vat_rates"][0])),
        lambda d: d["norms"].pop(),  # a norm row missing
        lambda d: d["tariffs"][0].update(flat="-1"),
        lambda d: d["tariffs"][0].update(flat=16.36),  # a float: refused
        lambda d: d["tariffs"][0].update(flat="abc"),
        lambda d: d["vat_rates"][0].update(rate="1.2"),
        lambda d: d["norms"][0].update(tier1="200"),  # tier1 > tier2
        lambda d: d["tariffs"][0].update(effective_from="2018-13-01"),
        lambda d: d.pop("vat_rates"),
    ],
)
def test_malformed_catalog_is_refused(corrupt: Any) -> None:
    data = _seed_data()
    corrupt(data)
    with pytest.raises(CatalogError) as caught:
        catalog_from_data(data)
    assert caught.value.code == "invalid_catalog"


def test_catalog_sorts_rows() -> None:
    catalog = TariffCatalog(tuple(reversed(CATALOG.rows)), tuple(reversed(CATALOG.vat_rates)), CATALOG.norms)
    assert catalog == CATALOG
    assert isinstance(catalog.rows[0], TariffRow)
