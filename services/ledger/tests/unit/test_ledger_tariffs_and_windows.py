"""Tariff texts of charges, the period filter's window, the filters' validation, and the event codec."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from ledger.adapters.codec import from_stored, movement_of, to_contract
from ledger.application.queries import InvalidQuery, date_range, period_range
from ledger.domain.events import (
    AccrualPosted,
    CorrectionPosted,
    OpeningBalanceSet,
    PaymentReceived,
    PaymentReversed,
)
from ledger.domain.period import Period
from ledger.domain.periods import PeriodRow, period_table
from ledger.domain.sheet import Movement
from ledger.domain.statement import window
from ledger.domain.tariffs import RatedLine, format_rate, tariff_text
from ledger.statement import money_text, month_name

JUN, JUL = (date(2025, 6, 1), date(2025, 7, 1)), (date(2025, 7, 1), date(2025, 8, 1))


def lines(piece: tuple[date, date], **rates: str) -> list[RatedLine]:
    return [RatedLine(piece[0], piece[1], tier.removeprefix("t"), Decimal(r)) for tier, r in rates.items()]


def test_flat_and_tiered_tariff_texts() -> None:
    assert tariff_text(lines(JUL, flat="31.8500")) == "31.85 ₸/кВт·ч"
    assert tariff_text(lines(JUL, t1="28.95", t2="38.22", t3="47.77")) == "дифф.: 28.95/38.22/47.77 ₸/кВт·ч"
    assert tariff_text([]) is None


def test_a_charge_across_a_tariff_change_lists_each_rate_once_in_date_order() -> None:
    text = tariff_text(lines(JUL, flat="31.85") + lines(JUN, flat="16.36"))
    assert text == "16.36 ₸/кВт·ч; 31.85 ₸/кВт·ч"
    # a VAT change splits the interval without changing the net rate: one text
    same = lines((date(2025, 12, 1), date(2026, 1, 1)), flat="31.85") + lines(
        (date(2026, 1, 1), date(2026, 1, 15)), flat="31.85"
    )
    assert tariff_text(same) == "31.85 ₸/кВт·ч"


@pytest.mark.parametrize(
    ("rate", "text"), [("31.8500", "31.85"), ("12.345", "12.345"), ("32", "32.00"), ("0.5", "0.50")]
)
def test_rates_keep_significant_decimals_but_at_least_two(rate: str, text: str) -> None:
    assert format_rate(Decimal(rate)) == text


def rows(*specs: tuple[str, str, str]) -> list[PeriodRow]:
    """(period, opening, closing) rows with the difference accrued."""
    return [
        PeriodRow(
            Period.parse(p),
            Decimal(o),
            Decimal(c) - Decimal(o),
            Decimal("0.00"),
            Decimal("0.00"),
            Decimal(c),
            "t",
        )
        for p, o, c in specs
    ]


def test_window_carries_the_balance_after_the_last_month_up_to_the_current_one() -> None:
    stored = rows(("2025-01", "0.00", "10.00"), ("2025-02", "10.00", "25.00"))
    shown = window(
        stored, Period(2025, 2), Decimal("25.00"), Period(2024, 11), Period(2025, 12), Period(2025, 4)
    )
    assert [str(r.period) for r in shown] == ["2025-01", "2025-02", "2025-03", "2025-04"]
    assert shown[2].opening_balance == shown[3].closing_balance == Decimal("25.00")
    assert (shown[3].accrued, shown[3].paid, shown[3].tariff) == (0, 0, None)
    # a window after the last stored month shows only carried months
    later = window([], Period(2025, 2), Decimal("25.00"), Period(2025, 3), Period(2025, 3), Period(2025, 9))
    assert [(str(r.period), r.closing_balance) for r in later] == [("2025-03", Decimal("25.00"))]


def test_window_equals_the_domain_table_extended_to_the_current_month() -> None:
    events = [
        OpeningBalanceSet(Period(2025, 1), Decimal("100.00")),
        AccrualPosted("c1", Period(2025, 2), Decimal("50.00"), "31.85 ₸/кВт·ч", Decimal("10.00")),
        PaymentReceived.of("p1", date(2025, 3, 5), Decimal("120.00"), "Halyk"),
    ]
    stored = period_table(events)
    for first, last in [(Period(2025, 1), Period(2025, 6)), (Period(2025, 2), Period(2025, 3))]:
        shown = window(
            [r for r in stored if first <= r.period <= last], Period(2025, 3), stored[-1].closing_balance,
            first, last, Period(2025, 5),
        )  # fmt: skip
        expected = period_table(events, first, min(last, Period(2025, 5)))
        assert shown == expected


def test_month_filters() -> None:
    current = Period(2025, 9)
    assert period_range(None, None, current=current) == (Period(2024, 10), Period(2025, 9))
    assert period_range("2025-01", "2025-03", current=current) == (Period(2025, 1), Period(2025, 3))
    for bad, code in [
        (("2025-13", None), "invalid_period"),
        (("2025-1", None), "invalid_period"),
        (("2025-05", "2025-04"), "invalid_range"),
        (("2010-01", "2025-01"), "range_too_long"),
        (("1800-01", "1800-02"), "invalid_period"),
    ]:
        with pytest.raises(InvalidQuery) as caught:
            period_range(*bad, current=current)
        assert caught.value.code == code, bad


def test_date_filters() -> None:
    today = date(2025, 9, 14)
    assert date_range(None, None, current=today) == (date(2024, 9, 14), today)
    assert date_range("2025-01-01", "2025-01-31", current=today) == (date(2025, 1, 1), date(2025, 1, 31))
    for bad, code in [
        (("2025-02-30", None), "invalid_date"),
        (("20250101", None), "invalid_date"),
        (("2025-03-01", "2025-02-01"), "invalid_range"),
        (("2000-01-01", "2025-01-01"), "range_too_long"),
    ]:
        with pytest.raises(InvalidQuery) as caught:
            date_range(*bad, current=today)
        assert caught.value.code == code, bad


def test_codec_round_trips_every_event_through_its_canonical_payload() -> None:
    payment = PaymentReceived.of("p1", date(2025, 3, 5), Decimal("120.50"), "Halyk")
    events = [
        OpeningBalanceSet(Period(2025, 1), Decimal("-5.00")),
        AccrualPosted("c1", Period(2025, 2), Decimal("50.00"), None, Decimal("10.00"), estimated=True),
        CorrectionPosted("k1", Period(2025, 2), Decimal("-7.25"), "recount"),
        payment,
        PaymentReversed("p1", "bank error"),
    ]
    for event in events:
        payload = to_contract("100200300401", "electricity", event, payment)
        assert payload.account_no == "100200300401"  # type: ignore[attr-defined]
        stored = payload.model_dump(mode="json")
        assert from_stored(type(event).__name__, 1, stored) == event
    reversal = to_contract("100200300401", "electricity", events[-1], payment)
    assert movement_of(reversal) == Movement.reversal(Period(2025, 3), 12050)
    with pytest.raises(ValueError, match="needs the payment"):
        to_contract("100200300401", "electricity", events[-1], None)


def test_statement_formatting() -> None:
    assert money_text(Decimal("1234567.5")) == "1 234 567,50"
    assert money_text(Decimal("-0.05")) == "-0,05"
    assert money_text(Decimal("0")) == "0,00"
    assert month_name(Period(2025, 3)) == "март 2025"
