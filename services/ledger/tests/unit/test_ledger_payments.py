from datetime import date
from decimal import Decimal

import pytest

from ledger.domain.errors import InconsistentStream
from ledger.domain.events import AccrualPosted, LedgerEvent, PaymentReceived, PaymentReversed
from ledger.domain.payments import PaymentLine, PaymentsView, payment_lines
from ledger.domain.period import Period

EVENTS: list[LedgerEvent] = [
    PaymentReceived.of("P-2", date(2025, 2, 10), Decimal("200.00"), "Kaspi"),
    AccrualPosted("CH-1", Period(2025, 1), Decimal("10.00"), None, Decimal("1.00")),
    PaymentReceived.of("P-1", date(2025, 1, 31), Decimal("100.00"), "Halyk"),
    PaymentReceived.of("P-3", date(2025, 3, 1), Decimal("300.50"), "Halyk"),
    PaymentReversed("P-2", "returned"),
]


def test_lists_payments_by_date_with_the_reversed_flag() -> None:
    assert payment_lines(EVENTS) == [
        PaymentLine("P-1", date(2025, 1, 31), Decimal("100.00"), "Halyk", reversed=False),
        PaymentLine("P-2", date(2025, 2, 10), Decimal("200.00"), "Kaspi", reversed=True),
        PaymentLine("P-3", date(2025, 3, 1), Decimal("300.50"), "Halyk", reversed=False),
    ]
    assert [line.payment_id for line in payment_lines(EVENTS, include_reversed=False)] == ["P-1", "P-3"]


def test_date_range_is_inclusive_on_both_ends() -> None:
    assert [line.payment_id for line in payment_lines(EVENTS, date(2025, 1, 31), date(2025, 3, 1))] == [
        "P-1",
        "P-2",
        "P-3",
    ]
    assert [line.payment_id for line in payment_lines(EVENTS, date(2025, 2, 1), date(2025, 2, 28))] == ["P-2"]
    assert [line.payment_id for line in payment_lines(EVENTS, from_date=date(2025, 2, 11))] == ["P-3"]
    assert [line.payment_id for line in payment_lines(EVENTS, to_date=date(2025, 1, 30))] == []


def test_apply_returns_the_changed_line() -> None:
    view = PaymentsView()
    assert view.apply(EVENTS[1]) is None
    assert view.apply(EVENTS[0]) == PaymentLine("P-2", date(2025, 2, 10), Decimal("200.00"), "Kaspi")
    assert view.apply(EVENTS[4]) == PaymentLine("P-2", date(2025, 2, 10), Decimal("200.00"), "Kaspi", True)


def test_refuses_an_inconsistent_stream() -> None:
    view = PaymentsView.from_events(EVENTS)
    with pytest.raises(InconsistentStream):
        view.apply(EVENTS[0])
    with pytest.raises(InconsistentStream):
        view.apply(PaymentReversed("P-2", "again"))
    with pytest.raises(InconsistentStream):
        view.apply(PaymentReversed("P-404", ""))
