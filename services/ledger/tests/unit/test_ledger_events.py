from datetime import date, datetime
from decimal import Decimal

import pytest

from ledger.domain.errors import InvalidLedgerEvent
from ledger.domain.events import (
    EVENT_TYPES,
    AccrualPosted,
    CorrectionPosted,
    OpeningBalanceSet,
    PaymentReceived,
    PaymentReversed,
)
from ledger.domain.period import Period

MARCH = Period(2025, 3)


def test_amounts_are_normalised_to_two_decimals() -> None:
    assert str(OpeningBalanceSet(MARCH, Decimal("5")).amount) == "5.00"
    assert str(CorrectionPosted("c1", MARCH, Decimal("-1.5"), "r").amount) == "-1.50"
    accrual = AccrualPosted("ch1", MARCH, Decimal("100.1"), "31.85 ₸/кВт·ч", Decimal("3"))
    assert str(accrual.amount) == "100.10"
    assert str(accrual.consumption_kwh) == "3.00"
    # Trailing zeros beyond two decimals are not a third decimal.
    assert str(OpeningBalanceSet(MARCH, Decimal("1.2300")).amount) == "1.23"


def test_float_amounts_are_refused() -> None:
    with pytest.raises(InvalidLedgerEvent):
        OpeningBalanceSet(MARCH, 0.1)  # type: ignore[arg-type]
    with pytest.raises(InvalidLedgerEvent):
        PaymentReceived.of("p1", date(2025, 3, 1), 10, "Halyk")  # type: ignore[arg-type]


@pytest.mark.parametrize("amount", ["0.001", "1.005", "NaN", "Infinity", "1e13"])
def test_third_decimal_non_finite_and_huge_amounts_are_refused(amount: str) -> None:
    with pytest.raises(InvalidLedgerEvent):
        CorrectionPosted("c1", MARCH, Decimal(amount), "r")


def test_payment_amount_must_be_positive() -> None:
    with pytest.raises(InvalidLedgerEvent):
        PaymentReceived.of("p1", date(2025, 3, 1), Decimal("0.00"), "Halyk")
    with pytest.raises(InvalidLedgerEvent):
        PaymentReceived.of("p1", date(2025, 3, 1), Decimal("-1.00"), "Halyk")


def test_accrual_and_consumption_must_not_be_negative() -> None:
    with pytest.raises(InvalidLedgerEvent):
        AccrualPosted("ch1", MARCH, Decimal("-0.01"), None, Decimal("1"))
    with pytest.raises(InvalidLedgerEvent):
        AccrualPosted("ch1", MARCH, Decimal("1"), None, Decimal("-1"))
    assert AccrualPosted("ch1", MARCH, Decimal("0"), None, Decimal("0")).amount == Decimal("0.00")


def test_correction_and_opening_balance_take_any_sign() -> None:
    assert CorrectionPosted("c1", MARCH, Decimal("-250.00"), "recount").amount == Decimal("-250.00")
    assert OpeningBalanceSet(MARCH, Decimal("-1000.00")).amount == Decimal("-1000.00")


def test_payment_period_is_the_month_of_paid_on() -> None:
    payment = PaymentReceived.of("p1", date(2025, 3, 31), Decimal("10.00"), "Kaspi")
    assert payment.period == MARCH
    with pytest.raises(InvalidLedgerEvent):
        PaymentReceived("p1", Period(2025, 4), date(2025, 3, 31), Decimal("10.00"), "Kaspi")
    with pytest.raises(InvalidLedgerEvent):
        PaymentReceived.of("p1", datetime(2025, 3, 31, 12), Decimal("10.00"), "Kaspi")


def test_ids_must_not_be_empty() -> None:
    with pytest.raises(InvalidLedgerEvent):
        PaymentReversed(" ", "reason")
    with pytest.raises(InvalidLedgerEvent):
        AccrualPosted("", MARCH, Decimal("1"), None, Decimal("1"))
    with pytest.raises(InvalidLedgerEvent):
        CorrectionPosted("", MARCH, Decimal("1"), "r")


def test_period_must_be_a_period() -> None:
    with pytest.raises(InvalidLedgerEvent):
        OpeningBalanceSet("2025-03", Decimal("1"))  # type: ignore[arg-type]


def test_events_are_frozen_and_comparable() -> None:
    event = PaymentReversed("p1", "cancelled by bank")
    assert event == PaymentReversed("p1", "cancelled by bank")
    with pytest.raises(AttributeError):
        event.reason = "other"  # type: ignore[misc]


def test_event_types_registry() -> None:
    assert set(EVENT_TYPES) == {
        "OpeningBalanceSet",
        "AccrualPosted",
        "CorrectionPosted",
        "PaymentReceived",
        "PaymentReversed",
    }
