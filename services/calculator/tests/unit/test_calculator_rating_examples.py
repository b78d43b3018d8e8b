"""Worked examples: one for every rule of RATING.md, computed by hand in the docstrings.

Catalog (RATING.md §3, the seed file): flat / tier1 / tier2 / tier3 net KZT per kWh
  from 2018-03-01: 16.36 / 14.87 / 19.63 / 24.54
  from 2025-07-01: 31.85 / 28.95 / 38.22 / 47.77
VAT: 12% from 2009-01-01, 16% from 2026-01-01.
Norms (kWh per resident per 30.5 days, cumulative L1 / L2, RATING.md §2):
  no stove 90/160; stove 115/190; living alone 115/160; living alone + stove 140/190.
Pieces are half-open `[from, to)`: `to` is the first day not in the piece.
All rounding is half-up to 0.01.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from calculator.domain.errors import CatalogError, RatingError
from calculator.domain.rating import (
    FALLBACK_NO_RESIDENTS,
    AccountAttributes,
    MeterReading,
    MeterReplacement,
    RatedInterval,
    TariffOption,
    rate,
    rate_consumption,
)
from calculator.domain.tariffs import TariffCatalog, VatRate, seed_catalog

CATALOG = seed_catalog()


def attrs(
    option: TariffOption = "flat",
    residents: int = 1,
    *,
    stove: bool = False,
    alone: bool = False,
    digits: int = 6,
) -> AccountAttributes:
    return AccountAttributes(
        tariff_option=option,
        residents=residents,
        electric_stove=stove,
        living_alone=alone,
        meter_digits=digits,
    )


def reading(day: date, value: str) -> MeterReading:
    return MeterReading(day, Decimal(value))


LineRow = tuple[str, str, str, str | None, str, str, str]


def line_rows(result: RatedInterval) -> list[LineRow]:
    """Lines as `(from, to, tier, limit, kwh, rate, amount)` strings, for exact comparison."""
    return [
        (
            line.from_date.isoformat(),
            line.to_date.isoformat(),
            line.tier,
            None if line.limit_kwh is None else str(line.limit_kwh),
            str(line.kwh),
            str(line.rate),
            str(line.amount),
        )
        for line in result.lines
    ]


def totals(result: RatedInterval) -> tuple[str, str, str]:
    return str(result.net_total), str(result.vat), str(result.total)


AUG_1 = date(2025, 8, 1)
SEP_1 = date(2025, 9, 1)  # Aug 1 → Sep 1 = 31 days, no change date in between
OCT_1 = date(2025, 10, 1)  # Aug 1 → Oct 1 = 31 + 30 = 61 days = 2 × 30.5: limits are norm × n × 2


# --- §1 / §4.4: flat -------------------------------------------------------------------------------


def test_flat_single_piece() -> None:
    """Flat, 2025-08-01 1000.00 → 2025-09-01 1250.00.

    days = 31; q = 1250.00 − 1000.00 = 250.00 kWh; one piece, rate 31.85 (row 2025-07-01), VAT 12%.
    line: 250.00 × 31.85 = 7962.50
    VAT:  7962.50 × 0.12 = 955.50
    total = 7962.50 + 955.50 = 8918.00
    """
    result = rate(reading(AUG_1, "1000.00"), reading(SEP_1, "1250.00"), attrs("flat"), CATALOG)
    assert result.days == 31
    assert result.consumption_kwh == Decimal("250.00")
    assert result.tariff_option_applied == "flat"
    assert result.fallback_reason is None
    assert line_rows(result) == [("2025-08-01", "2025-09-01", "flat", None, "250.00", "31.85", "7962.50")]
    assert totals(result) == ("7962.50", "955.50", "8918.00")
    assert result.previous == reading(AUG_1, "1000.00")
    assert result.current == reading(SEP_1, "1250.00")
    assert not result.rollover


# --- §2: each norm row -----------------------------------------------------------------------------


def test_tiered_no_stove_two_residents() -> None:
    """Tiered, no stove, not alone (90/160), n = 2, 2025-08-01 → 2025-10-01 (61 days), q = 700.00.

    L1 = 90 × 2 × 61 / 30.5 = 360.00;  L2 = 160 × 2 × 61 / 30.5 = 640.00
    tier 1 = min(700, 360) = 360.00 → 360.00 × 28.95 = 10422.00
    tier 2 = min(700 − 360, 640 − 360) = 280.00 → 280.00 × 38.22 = 10701.60
    tier 3 = 700 − 360 − 280 = 60.00 → 60.00 × 47.77 = 2866.20
    net = 10422.00 + 10701.60 + 2866.20 = 23989.80
    VAT = 23989.80 × 0.12 = 2878.776 → 2878.78
    total = 23989.80 + 2878.78 = 26868.58
    """
    result = rate(reading(AUG_1, "0"), reading(OCT_1, "700.00"), attrs("tiered", 2), CATALOG)
    assert line_rows(result) == [
        ("2025-08-01", "2025-10-01", "1", "360.00", "360.00", "28.95", "10422.00"),
        ("2025-08-01", "2025-10-01", "2", "640.00", "280.00", "38.22", "10701.60"),
        ("2025-08-01", "2025-10-01", "3", None, "60.00", "47.77", "2866.20"),
    ]
    assert totals(result) == ("23989.80", "2878.78", "26868.58")


def test_tiered_electric_stove() -> None:
    """Tiered, electric stove, not alone (115/190), n = 1, 61 days, q = 300.50.

    L1 = 115 × 1 × 61 / 30.5 = 230.00;  L2 = 190 × 61 / 30.5 = 380.00
    tier 1 = 230.00 → 230.00 × 28.95 = 6658.50
    tier 2 = min(300.50 − 230.00, 380 − 230) = 70.50 → 70.50 × 38.22 = 2694.51
    tier 3 = 0.00 → 0.00 (listed although 0 kWh)
    net = 6658.50 + 2694.51 + 0.00 = 9353.01
    VAT = 9353.01 × 0.12 = 1122.3612 → 1122.36
    total = 10475.37
    """
    result = rate(reading(AUG_1, "0"), reading(OCT_1, "300.50"), attrs("tiered", 1, stove=True), CATALOG)
    assert line_rows(result) == [
        ("2025-08-01", "2025-10-01", "1", "230.00", "230.00", "28.95", "6658.50"),
        ("2025-08-01", "2025-10-01", "2", "380.00", "70.50", "38.22", "2694.51"),
        ("2025-08-01", "2025-10-01", "3", None, "0.00", "47.77", "0.00"),
    ]
    assert totals(result) == ("9353.01", "1122.36", "10475.37")


def test_tiered_living_alone_no_stove() -> None:
    """Tiered, living alone, no stove (115/160), n = 1, 61 days, q = 100.00.

    L1 = 115 × 61 / 30.5 = 230.00;  L2 = 160 × 61 / 30.5 = 320.00
    tier 1 = min(100, 230) = 100.00 → 100.00 × 28.95 = 2895.00
    tier 2 = min(0, 90) = 0.00 → 0.00;  tier 3 = 0.00 → 0.00 (both listed)
    net = 2895.00;  VAT = 2895.00 × 0.12 = 347.40;  total = 3242.40
    """
    result = rate(reading(AUG_1, "0"), reading(OCT_1, "100"), attrs("tiered", 1, alone=True), CATALOG)
    assert line_rows(result) == [
        ("2025-08-01", "2025-10-01", "1", "230.00", "100.00", "28.95", "2895.00"),
        ("2025-08-01", "2025-10-01", "2", "320.00", "0.00", "38.22", "0.00"),
        ("2025-08-01", "2025-10-01", "3", None, "0.00", "47.77", "0.00"),
    ]
    assert totals(result) == ("2895.00", "347.40", "3242.40")


def test_tiered_living_alone_with_stove() -> None:
    """Tiered, living alone with electric stove (140/190), n = 1, 61 days, q = 500.00.

    L1 = 140 × 61 / 30.5 = 280.00;  L2 = 190 × 61 / 30.5 = 380.00
    tier 1 = 280.00 → 280.00 × 28.95 = 8106.00
    tier 2 = min(220, 100) = 100.00 → 100.00 × 38.22 = 3822.00
    tier 3 = 500 − 280 − 100 = 120.00 → 120.00 × 47.77 = 5732.40
    net = 17660.40;  VAT = 17660.40 × 0.12 = 2119.248 → 2119.25;  total = 19779.65
    """
    result = rate(
        reading(AUG_1, "0"), reading(OCT_1, "500"), attrs("tiered", 1, stove=True, alone=True), CATALOG
    )
    assert line_rows(result) == [
        ("2025-08-01", "2025-10-01", "1", "280.00", "280.00", "28.95", "8106.00"),
        ("2025-08-01", "2025-10-01", "2", "380.00", "100.00", "38.22", "3822.00"),
        ("2025-08-01", "2025-10-01", "3", None, "120.00", "47.77", "5732.40"),
    ]
    assert totals(result) == ("17660.40", "2119.25", "19779.65")


def test_tier_limits_prorated_over_31_days() -> None:
    """Tiered, no stove, n = 3, 2025-08-01 → 2025-09-01 = 31 days, q = 500.00.

    L1 = 90 × 3 × 31 / 30.5 = 8370 / 30.5 = 274.4262… → 274.43
    L2 = 160 × 3 × 31 / 30.5 = 14880 / 30.5 = 487.8688… → 487.87
    tier 1 = 274.43 → 274.43 × 28.95 = 7944.7485 → 7944.75
    tier 2 = min(500 − 274.43, 487.87 − 274.43) = min(225.57, 213.44) = 213.44
             → 213.44 × 38.22 = 8157.6768 → 8157.68
    tier 3 = 500 − 274.43 − 213.44 = 12.13 → 12.13 × 47.77 = 579.4501 → 579.45
    net = 7944.75 + 8157.68 + 579.45 = 16681.88
    VAT = 16681.88 × 0.12 = 2001.8256 → 2001.83;  total = 18683.71
    """
    result = rate(reading(AUG_1, "0"), reading(SEP_1, "500"), attrs("tiered", 3), CATALOG)
    assert line_rows(result) == [
        ("2025-08-01", "2025-09-01", "1", "274.43", "274.43", "28.95", "7944.75"),
        ("2025-08-01", "2025-09-01", "2", "487.87", "213.44", "38.22", "8157.68"),
        ("2025-08-01", "2025-09-01", "3", None, "12.13", "47.77", "579.45"),
    ]
    assert totals(result) == ("16681.88", "2001.83", "18683.71")


# --- §1: zero residents → flat ---------------------------------------------------------------------


def test_tiered_with_zero_residents_falls_back_to_flat() -> None:
    """Tiered with 0 residents is rated flat, and the result says so.

    Same as the flat example: 250.00 × 31.85 = 7962.50; VAT 955.50; total 8918.00.
    tariff_option_requested = tiered, tariff_option_applied = flat, reason = tiered_without_residents.
    """
    result = rate(reading(AUG_1, "1000.00"), reading(SEP_1, "1250.00"), attrs("tiered", 0), CATALOG)
    assert result.tariff_option_requested == "tiered"
    assert result.tariff_option_applied == "flat"
    assert result.fallback_reason == FALLBACK_NO_RESIDENTS
    assert result.fell_back_to_flat
    assert result.fallback_message_ru is not None and "единому тарифу" in result.fallback_message_ru
    assert line_rows(result) == [("2025-08-01", "2025-09-01", "flat", None, "250.00", "31.85", "7962.50")]
    assert totals(result) == ("7962.50", "955.50", "8918.00")


# --- §4.1: days ≥ 1 --------------------------------------------------------------------------------


@pytest.mark.parametrize("current_day", [AUG_1, date(2025, 7, 31)])
def test_days_must_be_at_least_one(current_day: date) -> None:
    """days = current − previous = 0 or −1 < 1 → rejected ('not_after_previous')."""
    with pytest.raises(RatingError) as caught:
        rate(reading(AUG_1, "10"), reading(current_day, "20"), attrs(), CATALOG)
    assert caught.value.code == "not_after_previous"


def test_one_day_interval() -> None:
    """2025-08-01 → 2025-08-02: days = 1, q = 10.00; 10.00 × 31.85 = 318.50; VAT 38.22; total 356.72."""
    result = rate(reading(AUG_1, "0"), reading(date(2025, 8, 2), "10"), attrs(), CATALOG)
    assert result.days == 1
    assert totals(result) == ("318.50", "38.22", "356.72")


# --- §4.2: rollover --------------------------------------------------------------------------------


def test_rollover() -> None:
    """5-digit meter (10^5 = 100000): previous 99950.00 ≥ 0.9 × 100000 = 90000, new 120.00 < 10000.

    q = 100000 − 99950.00 + 120.00 = 170.00
    flat, Aug 2025: 170.00 × 31.85 = 5414.50;  VAT 5414.50 × 0.12 = 649.74;  total 6064.24
    """
    result = rate(reading(AUG_1, "99950.00"), reading(SEP_1, "120.00"), attrs(digits=5), CATALOG)
    assert result.rollover
    assert result.consumption_kwh == Decimal("170.00")
    assert totals(result) == ("5414.50", "649.74", "6064.24")


@pytest.mark.parametrize(
    ("previous", "new"),
    [
        ("85000.00", "120.00"),  # previous 85000 < 90000: not near the top
        ("99950.00", "10000.00"),  # new 10000 is not < 0.1 × 100000 = 10000
        ("89999.99", "0.00"),  # just below the 0.9 bound
    ],
)
def test_lower_reading_without_rollover_is_rejected(previous: str, new: str) -> None:
    """new < previous outside the rollover window → rejected «Показание меньше предыдущего»."""
    with pytest.raises(RatingError) as caught:
        rate(reading(AUG_1, previous), reading(SEP_1, new), attrs(digits=5), CATALOG)
    assert caught.value.code == "less_than_previous"
    assert caught.value.message_ru.startswith("Показание меньше предыдущего")


def test_rollover_at_the_exact_bounds() -> None:
    """previous = 90000.00 (= 0.9 × 10^5, included), new = 9999.99 (< 10000).

    q = 100000 − 90000.00 + 9999.99 = 19999.99 kWh;  19999.99 × 31.85 = 636999.6815 → 636999.68
    VAT = 636999.68 × 0.12 = 76439.9616 → 76439.96;  total = 713439.64
    """
    result = rate(reading(AUG_1, "90000.00"), reading(SEP_1, "9999.99"), attrs(digits=5), CATALOG)
    assert result.consumption_kwh == Decimal("19999.99")
    assert totals(result) == ("636999.68", "76439.96", "713439.64")


# --- §4.2: meter replacement -----------------------------------------------------------------------


def test_meter_replacement() -> None:
    """Previous 4500.00 on 2025-08-01; replaced 2025-08-15: old final 4580.00, new initial 0.00;
    new reading 95.50 on 2025-09-01 (lower than the previous: allowed after a replacement).

    q = (4580.00 − 4500.00) + (95.50 − 0.00) = 80.00 + 95.50 = 175.50
    flat: 175.50 × 31.85 = 5589.675 → 5589.68 (a half-up tie)
    VAT = 5589.68 × 0.12 = 670.7616 → 670.76;  total = 6260.44
    """
    replacement = MeterReplacement(date(2025, 8, 15), Decimal("4580.00"), Decimal("0.00"), 6)
    result = rate(reading(AUG_1, "4500.00"), reading(SEP_1, "95.50"), attrs(digits=5), CATALOG, replacement)
    assert result.consumption_kwh == Decimal("175.50")
    assert result.replacement == replacement
    assert not result.rollover
    assert line_rows(result) == [("2025-08-01", "2025-09-01", "flat", None, "175.50", "31.85", "5589.68")]
    assert totals(result) == ("5589.68", "670.76", "6260.44")


def test_meter_replacement_rejects_reading_below_new_initial() -> None:
    """New meter initial 100.00, new reading 95.50: 95.50 − 100.00 < 0 → rejected."""
    replacement = MeterReplacement(date(2025, 8, 15), Decimal("4580.00"), Decimal("100.00"), 6)
    with pytest.raises(RatingError) as caught:
        rate(reading(AUG_1, "4500.00"), reading(SEP_1, "95.50"), attrs(), CATALOG, replacement)
    assert caught.value.code == "less_than_initial_reading"


def test_meter_replacement_outside_the_interval_is_refused() -> None:
    """A replacement dated after the new reading is not 'since the previous reading'."""
    replacement = MeterReplacement(date(2025, 9, 2), Decimal("4580.00"), Decimal("0"), 6)
    with pytest.raises(RatingError) as caught:
        rate(reading(AUG_1, "4500.00"), reading(SEP_1, "95.50"), attrs(), CATALOG, replacement)
    assert caught.value.code == "invalid_replacement"


# --- §4.3: splitting at tariff and VAT changes ----------------------------------------------------


def test_split_at_tariff_change() -> None:
    """Flat, 2025-06-16 → 2025-07-16: days = 30, cut at 2025-07-01.

    pieces [06-16, 07-01) d = 15 (row 2018: 16.36) and [07-01, 07-16) d = 15 (row 2025: 31.85)
    q = 100.01: q1 = 100.01 × 15 / 30 = 50.005 → 50.01 (half-up tie), q2 = 100.01 − 50.01 = 50.00
    line 1: 50.01 × 16.36 = 818.1636 → 818.16;  line 2: 50.00 × 31.85 = 1592.50
    net = 2410.66
    VAT per piece: 818.16 × 0.12 = 98.1792 → 98.18;  1592.50 × 0.12 = 191.10;  VAT = 289.28
    total = 2699.94
    """
    result = rate(reading(date(2025, 6, 16), "0"), reading(date(2025, 7, 16), "100.01"), attrs(), CATALOG)
    assert line_rows(result) == [
        ("2025-06-16", "2025-07-01", "flat", None, "50.01", "16.36", "818.16"),
        ("2025-07-01", "2025-07-16", "flat", None, "50.00", "31.85", "1592.50"),
    ]
    assert [(p.days, str(p.net), str(p.vat_rate), str(p.vat)) for p in result.pieces] == [
        (15, "818.16", "0.12", "98.18"),
        (15, "1592.50", "0.12", "191.10"),
    ]
    assert totals(result) == ("2410.66", "289.28", "2699.94")


def test_split_at_tariff_change_tiered_and_vat_rounded_per_piece() -> None:
    """Tiered, no stove, n = 1, 2025-06-16 → 2025-07-16 (30 days), q = 200.00.

    q1 = 200 × 15 / 30 = 100.00, q2 = 100.00.  Each piece has d = 15:
    L1 = 90 × 15 / 30.5 = 44.2622… → 44.26;  L2 = 160 × 15 / 30.5 = 78.6885… → 78.69
    tiers: 44.26 / min(55.74, 34.43) = 34.43 / 100 − 44.26 − 34.43 = 21.31
    piece 1 (2018 rates): 44.26 × 14.87 = 658.1462 → 658.15; 34.43 × 19.63 = 675.8609 → 675.86;
                          21.31 × 24.54 = 522.9474 → 522.95;  net 1856.96
                          VAT 1856.96 × 0.12 = 222.8352 → 222.84
    piece 2 (2025 rates): 44.26 × 28.95 = 1281.327 → 1281.33; 34.43 × 38.22 = 1315.9146 → 1315.91;
                          21.31 × 47.77 = 1017.9787 → 1017.98;  net 3615.22
                          VAT 3615.22 × 0.12 = 433.8264 → 433.83
    net = 5472.18;  VAT = 222.84 + 433.83 = 656.67 (rounding the total once would give
    5472.18 × 0.12 = 656.6616 → 656.66: VAT is rounded per piece, then summed);  total = 6128.85
    """
    result = rate(
        reading(date(2025, 6, 16), "0"), reading(date(2025, 7, 16), "200"), attrs("tiered", 1), CATALOG
    )
    assert line_rows(result) == [
        ("2025-06-16", "2025-07-01", "1", "44.26", "44.26", "14.87", "658.15"),
        ("2025-06-16", "2025-07-01", "2", "78.69", "34.43", "19.63", "675.86"),
        ("2025-06-16", "2025-07-01", "3", None, "21.31", "24.54", "522.95"),
        ("2025-07-01", "2025-07-16", "1", "44.26", "44.26", "28.95", "1281.33"),
        ("2025-07-01", "2025-07-16", "2", "78.69", "34.43", "38.22", "1315.91"),
        ("2025-07-01", "2025-07-16", "3", None, "21.31", "47.77", "1017.98"),
    ]
    assert [str(p.vat) for p in result.pieces] == ["222.84", "433.83"]
    assert totals(result) == ("5472.18", "656.67", "6128.85")


def test_split_at_vat_change() -> None:
    """Flat, 2025-12-11 → 2026-01-10: days = 21 + 9 = 30, cut at 2026-01-01.

    q = 150.00: q1 = 150 × 21 / 30 = 105.00, q2 = 45.00; both at 31.85
    lines: 105.00 × 31.85 = 3344.25;  45.00 × 31.85 = 1433.25;  net = 4777.50
    VAT: 3344.25 × 0.12 = 401.31;  1433.25 × 0.16 = 229.32;  VAT = 630.63
    total = 5408.13
    """
    result = rate(reading(date(2025, 12, 11), "0"), reading(date(2026, 1, 10), "150"), attrs(), CATALOG)
    assert line_rows(result) == [
        ("2025-12-11", "2026-01-01", "flat", None, "105.00", "31.85", "3344.25"),
        ("2026-01-01", "2026-01-10", "flat", None, "45.00", "31.85", "1433.25"),
    ]
    assert [(str(p.vat_rate), str(p.vat)) for p in result.pieces] == [("0.12", "401.31"), ("0.16", "229.32")]
    assert totals(result) == ("4777.50", "630.63", "5408.13")


def test_split_at_tariff_and_vat_changes_in_one_interval() -> None:
    """Flat, 2025-06-01 → 2026-02-01: days = 30 + 184 + 31 = 245, cut at 2025-07-01 and 2026-01-01.

    q = 1000.00:
      q1 = 1000 × 30 / 245 = 122.4489… → 122.45
      q2 = 1000 × 184 / 245 = 751.0204… → 751.02
      q3 = 1000.00 − 122.45 − 751.02 = 126.53 (the last piece takes the remainder)
    lines: 122.45 × 16.36 = 2003.282 → 2003.28
           751.02 × 31.85 = 23919.987 → 23919.99
           126.53 × 31.85 = 4029.9805 → 4029.98
    net = 29953.25
    VAT: 2003.28 × 0.12 = 240.3936 → 240.39;  23919.99 × 0.12 = 2870.3988 → 2870.40;
         4029.98 × 0.16 = 644.7968 → 644.80;  VAT = 3755.59
    total = 33708.84
    """
    result = rate(reading(date(2025, 6, 1), "0"), reading(date(2026, 2, 1), "1000"), attrs(), CATALOG)
    assert result.days == 245
    assert line_rows(result) == [
        ("2025-06-01", "2025-07-01", "flat", None, "122.45", "16.36", "2003.28"),
        ("2025-07-01", "2026-01-01", "flat", None, "751.02", "31.85", "23919.99"),
        ("2026-01-01", "2026-02-01", "flat", None, "126.53", "31.85", "4029.98"),
    ]
    assert [str(p.vat) for p in result.pieces] == ["240.39", "2870.40", "644.80"]
    assert totals(result) == ("29953.25", "3755.59", "33708.84")


def test_reading_on_the_change_date_does_not_split() -> None:
    """2025-06-01 → 2025-07-01: 2025-07-01 is not strictly between, so one piece [06-01, 07-01),
    rated with the row in force on 06-01 (16.36): 30.00 × 16.36 = 490.80; VAT 58.896 → 58.90;
    total 549.70.  The next interval starting on 2025-07-01 uses 31.85.
    """
    result = rate(reading(date(2025, 6, 1), "0"), reading(date(2025, 7, 1), "30"), attrs(), CATALOG)
    assert line_rows(result) == [("2025-06-01", "2025-07-01", "flat", None, "30.00", "16.36", "490.80")]
    assert totals(result) == ("490.80", "58.90", "549.70")
    following = rate(reading(date(2025, 7, 1), "30"), reading(date(2025, 7, 2), "31"), attrs(), CATALOG)
    assert line_rows(following) == [("2025-07-01", "2025-07-02", "flat", None, "1.00", "31.85", "31.85")]


def test_negative_remainder_is_capped() -> None:
    """Our choice for a case the literal rule gets wrong. A catalog with identical rows added on
    2025-08-02, -03, -04 cuts 2025-08-01 → 2025-08-05 into four 1-day pieces; q = 0.02.

    literal: q_i = 0.02 × 1 / 4 = 0.005 → 0.01 for pieces 1-3, the last 0.02 − 0.03 = −0.01 (negative!)
    capped:  0.01, 0.01, min(0.01, 0.00) = 0.00, remainder 0.00
    lines: 0.01 × 31.85 = 0.3185 → 0.32, 0.32, 0.00, 0.00;  net 0.64
    VAT per piece: 0.32 × 0.12 = 0.0384 → 0.04 (twice), 0.00, 0.00;  VAT 0.08;  total 0.72
    """
    catalog = CATALOG
    row = CATALOG.tariff_on(AUG_1)
    for day in (2, 3, 4):
        catalog = catalog.with_tariff_row(replace(row, effective_from=date(2025, 8, day)))
    result = rate_consumption(AUG_1, date(2025, 8, 5), Decimal("0.02"), attrs(), catalog)
    assert [str(p.kwh) for p in result.pieces] == ["0.01", "0.01", "0.00", "0.00"]
    assert totals(result) == ("0.64", "0.08", "0.72")


# --- §4.4 rounding ---------------------------------------------------------------------------------


def test_line_amount_rounds_half_up() -> None:
    """Flat, Aug 2025, q = 10.50: 10.50 × 31.85 = 334.425 → 334.43 (half-up; half-even would give 334.42).

    VAT = 334.43 × 0.12 = 40.1316 → 40.13;  total = 374.56
    """
    result = rate(reading(AUG_1, "0"), reading(SEP_1, "10.50"), attrs(), CATALOG)
    assert line_rows(result) == [("2025-08-01", "2025-09-01", "flat", None, "10.50", "31.85", "334.43")]
    assert totals(result) == ("334.43", "40.13", "374.56")


def test_allocation_rounds_half_up() -> None:
    """Flat, 2025-06-30 → 2025-07-02 (two 1-day pieces), q = 0.01.

    q1 = 0.01 × 1 / 2 = 0.005 → 0.01 (half-up; half-even would give 0.00);  q2 = 0.00
    lines: 0.01 × 16.36 = 0.1636 → 0.16;  0.00 × 31.85 = 0.00
    VAT: 0.16 × 0.12 = 0.0192 → 0.02;  0.00;  total = 0.18
    """
    result = rate(reading(date(2025, 6, 30), "5.00"), reading(date(2025, 7, 2), "5.01"), attrs(), CATALOG)
    assert [str(p.kwh) for p in result.pieces] == ["0.01", "0.00"]
    assert totals(result) == ("0.16", "0.02", "0.18")


# --- §4.6: every tier line listed, even at 0 kWh ---------------------------------------------------


def test_zero_consumption_lists_every_tier_line() -> None:
    """Tiered, n = 2, Aug 2025 (31 days), q = 0.00.

    L1 = 90 × 2 × 31 / 30.5 = 182.9508… → 182.95;  L2 = 160 × 2 × 31 / 30.5 = 325.2459… → 325.25
    lines: 0.00 / 0.00 / 0.00, amounts 0.00;  net 0.00;  VAT 0.00;  total 0.00
    """
    result = rate(reading(AUG_1, "123.45"), reading(SEP_1, "123.45"), attrs("tiered", 2), CATALOG)
    assert line_rows(result) == [
        ("2025-08-01", "2025-09-01", "1", "182.95", "0.00", "28.95", "0.00"),
        ("2025-08-01", "2025-09-01", "2", "325.25", "0.00", "38.22", "0.00"),
        ("2025-08-01", "2025-09-01", "3", None, "0.00", "47.77", "0.00"),
    ]
    assert totals(result) == ("0.00", "0.00", "0.00")


# --- inputs the engine refuses ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("previous", "current", "code"),
    [
        ("10.001", "20", "too_many_decimals"),
        ("10", "20.005", "too_many_decimals"),
        ("-1", "20", "negative"),
        ("10", "1000000", "exceeds_meter_capacity"),  # 6 digits: at most 999999.99
        ("10", "NaN", "not_a_number"),
    ],
)
def test_invalid_reading_values_are_refused(previous: str, current: str, code: str) -> None:
    with pytest.raises(RatingError) as caught:
        rate(reading(AUG_1, previous), reading(SEP_1, current), attrs(digits=6), CATALOG)
    assert caught.value.code == code


def test_trailing_zeros_beyond_two_decimals_are_fine() -> None:
    """10.000 has two decimals of value: q = 20.000 − 10.000 = 10.00; 10.00 × 31.85 = 318.50."""
    result = rate(reading(AUG_1, "10.000"), reading(SEP_1, "20.000"), attrs(), CATALOG)
    assert result.consumption_kwh == Decimal("10.00")
    assert result.net_total == Decimal("318.50")


def test_no_tariff_in_force_is_a_clear_error() -> None:
    """Before 2018-03-01 the seed catalog has no tariff row: CatalogError('no_tariff_in_force')."""
    with pytest.raises(CatalogError) as caught:
        rate(reading(date(2018, 2, 1), "0"), reading(date(2018, 3, 10), "10"), attrs(), CATALOG)
    assert caught.value.code == "no_tariff_in_force"
    assert caught.value.params == {"day": "2018-02-01"}


def test_no_vat_in_force_is_a_clear_error() -> None:
    catalog = TariffCatalog(CATALOG.rows, (VatRate(date(2026, 1, 1), Decimal("0.16")),), CATALOG.norms)
    with pytest.raises(CatalogError) as caught:
        rate(reading(AUG_1, "0"), reading(SEP_1, "10"), attrs(), catalog)
    assert caught.value.code == "no_vat_in_force"
