"""Events held by the aggregate cache share their repeated values (domain/shared.py), within a bound."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from ledger.domain import shared as shared_values
from ledger.domain.events import PaymentReceived
from ledger.domain.period import Period


def test_payments_share_their_bank_date_and_month_but_not_their_identity() -> None:
    first = PaymentReceived.of("pay-1", date(2025, 3, 5), Decimal("100.00"), "".join(["Kaspi", " Bank"]))
    second = PaymentReceived.of("pay-2", date(2025, 3, 5), Decimal("200.00"), "".join(["Kaspi", " ", "Bank"]))
    assert first.bank is second.bank and first.paid_on is second.paid_on and first.period is second.period
    assert first != second and first.amount != second.amount
    assert Period.of_date(date(2025, 3, 31)) is first.period == Period(2025, 3)


def test_values_of_other_types_are_never_taken_for_each_other() -> None:
    assert shared_values.shared(1) is not True and shared_values.shared(True) is True
    assert type(shared_values.shared(Decimal("1"))) is Decimal


def test_past_the_bound_new_values_are_kept_as_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shared_values, "_values", {})
    monkeypatch.setattr(shared_values, "MAX_DISTINCT", 2)
    held = [shared_values.shared(f"bank-{i}") for i in range(2)]
    late = "".join(["bank-", "late"])
    assert shared_values.shared(late) is late and len(shared_values._values) == 2
    assert shared_values.shared("".join(["bank-", "0"])) is held[0]  # the held ones are still shared
