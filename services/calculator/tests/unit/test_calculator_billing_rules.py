"""The pure rules of charges and the billing run (domain/billing.py), by hand."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from calculator.domain.billing import (
    ChargeFacts,
    Meter,
    billed_history,
    estimate_charge_id,
    estimates_to_reverse,
    event_id,
    install_point,
    meter_on,
    needs_estimate,
    period_bounds,
    previous_periods,
    reading_charge_id,
    replacement_between,
    spread_by_month,
)


def charge(
    cid: str,
    period: str,
    *,
    estimated: bool = False,
    kwh: str = "100",
    days: int = 30,
    total: str = "10.00",
    reversed_: bool = False,
) -> ChargeFacts:
    first, following = period_bounds(period)
    return ChargeFacts(
        cid, period, estimated, first, following, days, Decimal(kwh), Decimal(total), reversed_
    )


def test_ids_are_deterministic() -> None:
    assert reading_charge_id("r1") == "chg-r1"
    assert estimate_charge_id("100200300401", "2025-06") == "est-100200300401-2025-06"
    assert event_id("ChargeCalculated", "chg-r1") == event_id("ChargeCalculated", "chg-r1")
    assert event_id("ChargeCalculated", "chg-r1") != event_id("PeriodBilled", "chg-r1")


def test_periods() -> None:
    assert period_bounds("2025-12") == (date(2025, 12, 1), date(2026, 1, 1))
    assert previous_periods("2026-02", 4) == ["2025-11", "2025-12", "2026-01", "2026-02"]


def test_needs_estimate() -> None:
    """June 2025: no reading in June → estimate the active days; a reading in June → none. A reading
    dated after June does not cover June's estimate away: it reverses it (RATING.md §6, literally)."""
    assert needs_estimate("2025-06", date(2025, 1, 1), []) == (True, date(2025, 6, 1), date(2025, 7, 1))
    assert needs_estimate("2025-06", date(2025, 6, 11), [date(2025, 5, 31)]) == (
        True,
        date(2025, 6, 11),
        date(2025, 7, 1),
    )
    assert needs_estimate("2025-06", date(2025, 1, 1), [date(2025, 5, 3), date(2025, 6, 1)])[0] is False
    assert needs_estimate("2025-06", date(2025, 1, 1), [date(2025, 6, 30)])[0] is False
    assert needs_estimate("2025-06", date(2025, 1, 1), [date(2025, 7, 3)])[0] is True  # closed late
    assert needs_estimate("2025-06", date(2025, 7, 1), [])[0] is False  # not yet opened


def test_history_is_actual_charges_only() -> None:
    """June: 100 + 50 kWh over 30 + 10 days; the May estimate is not history."""
    history = billed_history(
        [
            charge("a", "2025-06", kwh="100", days=30),
            charge("b", "2025-06", kwh="50", days=10),
            charge("e", "2025-05", estimated=True),
        ]
    )
    assert [(m.period, m.kwh, m.days) for m in history] == [(date(2025, 6, 1), Decimal("150"), 40)]


def test_estimates_to_reverse() -> None:
    """Open estimates up to the reading's period; reversed ones and later periods stay."""
    charges = [
        charge("e4", "2025-04", estimated=True, reversed_=True),
        charge("e5", "2025-05", estimated=True),
        charge("e6", "2025-06", estimated=True),
        charge("e8", "2025-08", estimated=True),
        charge("a6", "2025-06"),
    ]
    assert [c.charge_id for c in estimates_to_reverse(charges, "2025-07")] == ["e5", "e6"]


def test_meters_and_replacement() -> None:
    """Old meter 1000 → 1500 removed 2025-03-10, new one from 20; two replacements fold into one."""
    old = Meter("A", 6, date(2025, 1, 1), Decimal("1000"), date(2025, 3, 10), Decimal("1500"))
    new = Meter("B", 5, date(2025, 3, 10), Decimal("20"), None, None)
    assert install_point([new, old]) is not None and install_point([new, old]).date == date(2025, 1, 1)  # type: ignore[union-attr]
    assert meter_on([old, new], date(2025, 3, 1)) == old and meter_on([old, new], date(2025, 3, 10)) == new
    r = replacement_between([old, new], date(2025, 2, 1), date(2025, 4, 1))
    assert r is not None and (r.old_final_reading, r.new_initial_reading, r.new_digits) == (
        Decimal("1500"),
        Decimal("20"),
        5,
    )
    assert replacement_between([old, new], date(2025, 3, 11), date(2025, 4, 1)) is None
    middle = Meter("B", 5, date(2025, 3, 10), Decimal("20"), date(2025, 3, 20), Decimal("70"))
    last = Meter("C", 6, date(2025, 3, 20), Decimal("5"), None, None)
    folded = replacement_between([old, middle, last], date(2025, 2, 1), date(2025, 4, 1))
    # (1500 − previous) + (70 − 20) + (new − 5): old_final = 1500 + 50
    assert folded is not None and (folded.old_final_reading, folded.new_initial_reading) == (
        Decimal("1550"),
        Decimal("5"),
    )


def test_spread_by_month() -> None:
    """420 kWh over 2025-05-01 … 2025-07-10 (70 days): 31/70 → 186.00, 30/70 → 180.00, the rest 54.00."""
    assert spread_by_month(date(2025, 5, 1), date(2025, 7, 10), Decimal("420.00")) == {
        "2025-05": Decimal("186.00"),
        "2025-06": Decimal("180.00"),
        "2025-07": Decimal("54.00"),
    }
