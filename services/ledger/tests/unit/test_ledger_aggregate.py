from datetime import date
from decimal import Decimal

import pytest

from ledger.domain.account_ledger import ServiceLedger
from ledger.domain.errors import (
    BeyondStoredRange,
    InconsistentStream,
    InvalidLedgerEvent,
    OpeningBalanceConflict,
    UnknownPayment,
)
from ledger.domain.events import (
    AccrualPosted,
    CorrectionPosted,
    LedgerEvent,
    OpeningBalanceSet,
    PaymentReceived,
    PaymentReversed,
)
from ledger.domain.period import Period

MARCH = Period(2025, 3)


def new_ledger() -> ServiceLedger:
    return ServiceLedger("100200300401", "electricity")


def test_receive_payment_emits_once_per_payment_id() -> None:
    ledger = new_ledger()
    events = ledger.receive_payment("BANK-1", date(2025, 3, 14), Decimal("5000.00"), "Halyk")
    assert events == [PaymentReceived(payment_id="BANK-1", period=MARCH, paid_on=date(2025, 3, 14),
                                      amount=Decimal("5000.00"), bank="Halyk")]  # fmt: skip
    assert ledger.version == 1
    # The same payment redelivered (whatever its back-office event_id): nothing new.
    assert ledger.receive_payment("BANK-1", date(2025, 3, 14), Decimal("5000.00"), "Halyk") == []
    assert ledger.version == 1


def test_duplicate_payment_id_with_another_amount_is_ignored_first_wins() -> None:
    """The bank's payment_id identifies the payment: a later report with the same id but another
    amount, date or bank is ignored, the first one stays. `known_payment` lets the caller log it."""
    ledger = new_ledger()
    ledger.receive_payment("BANK-1", date(2025, 3, 14), Decimal("5000.00"), "Halyk")
    assert ledger.receive_payment("BANK-1", date(2025, 4, 2), Decimal("7000.00"), "Kaspi") == []
    known = ledger.known_payment("BANK-1")
    assert known is not None
    assert known.amount == Decimal("5000.00")
    assert known.bank == "Halyk"


def test_reverse_payment_once() -> None:
    ledger = new_ledger()
    ledger.receive_payment("BANK-1", date(2025, 3, 14), Decimal("5000.00"), "Halyk")
    assert ledger.reverse_payment("BANK-1", "cancelled by bank") == [
        PaymentReversed("BANK-1", "cancelled by bank")
    ]
    assert ledger.is_reversed("BANK-1")
    assert ledger.reverse_payment("BANK-1", "cancelled by bank") == []
    assert ledger.version == 2


def test_reversed_payment_reported_again_stays_reversed() -> None:
    ledger = new_ledger()
    ledger.receive_payment("BANK-1", date(2025, 3, 14), Decimal("5000.00"), "Halyk")
    ledger.reverse_payment("BANK-1")
    assert ledger.receive_payment("BANK-1", date(2025, 3, 14), Decimal("5000.00"), "Halyk") == []
    assert ledger.is_reversed("BANK-1")


def test_reversing_an_unknown_payment_is_a_domain_error() -> None:
    ledger = new_ledger()
    with pytest.raises(UnknownPayment) as raised:
        ledger.reverse_payment("BANK-404", "cancelled")
    assert raised.value.payment_id == "BANK-404"
    assert ledger.version == 0


def test_accrual_is_idempotent_by_charge_id() -> None:
    ledger = new_ledger()
    first = ledger.post_accrual("CH-1", MARCH, Decimal("3185.00"), "31.85 ₸/кВт·ч", Decimal("100.00"))
    assert first == [
        AccrualPosted("CH-1", MARCH, Decimal("3185.00"), "31.85 ₸/кВт·ч", Decimal("100.00"), False)
    ]
    assert ledger.post_accrual("CH-1", MARCH, Decimal("9999.00"), None, Decimal("1.00"), estimated=True) == []
    assert ledger.knows_charge("CH-1")


def test_correction_is_idempotent_by_correction_id() -> None:
    ledger = new_ledger()
    assert ledger.post_correction("COR-1", MARCH, Decimal("-120.00"), "recount") == [
        CorrectionPosted("COR-1", MARCH, Decimal("-120.00"), "recount")
    ]
    assert ledger.post_correction("COR-1", MARCH, Decimal("-120.00"), "recount") == []
    assert ledger.knows_correction("COR-1")


def test_opening_balance_is_set_once() -> None:
    ledger = new_ledger()
    assert not ledger.is_open
    assert ledger.set_opening_balance(MARCH, Decimal("1500.00")) == [
        OpeningBalanceSet(MARCH, Decimal("1500.00"))
    ]
    assert ledger.is_open
    assert ledger.set_opening_balance(MARCH, Decimal("1500.00")) == []
    with pytest.raises(OpeningBalanceConflict):
        ledger.set_opening_balance(MARCH, Decimal("1600.00"))
    with pytest.raises(OpeningBalanceConflict):
        ledger.set_opening_balance(MARCH.next(), Decimal("1500.00"))
    assert ledger.version == 1


def test_invalid_command_arguments_raise_and_record_nothing() -> None:
    ledger = new_ledger()
    with pytest.raises(InvalidLedgerEvent):
        ledger.receive_payment("BANK-1", date(2025, 3, 14), Decimal("0.00"), "Halyk")
    with pytest.raises(InvalidLedgerEvent):
        ledger.post_accrual("CH-1", MARCH, Decimal("1.001"), None, Decimal("1"))
    assert ledger.version == 0
    assert ledger.known_payment("BANK-1") is None


def test_rebuilt_from_history_it_decides_the_same() -> None:
    ledger = new_ledger()
    history: list[LedgerEvent] = []
    history += ledger.set_opening_balance(MARCH, Decimal("10.00"))
    history += ledger.post_accrual("CH-1", MARCH, Decimal("3185.00"), None, Decimal("100.00"))
    history += ledger.post_correction("COR-1", MARCH, Decimal("-1.00"), "r")
    history += ledger.receive_payment("BANK-1", date(2025, 3, 14), Decimal("5000.00"), "Halyk")
    history += ledger.reverse_payment("BANK-1")
    rebuilt = ServiceLedger.from_history("100200300401", "electricity", history)
    assert rebuilt == ledger
    assert rebuilt.version == len(history) == 5
    assert rebuilt.receive_payment("BANK-1", date(2025, 3, 14), Decimal("5000.00"), "Halyk") == []
    assert rebuilt.reverse_payment("BANK-1") == []
    assert rebuilt.post_accrual("CH-1", MARCH, Decimal("3185.00"), None, Decimal("100.00")) == []
    assert rebuilt.post_correction("COR-1", MARCH, Decimal("-1.00"), "r") == []
    assert rebuilt.set_opening_balance(MARCH, Decimal("10.00")) == []


@pytest.mark.parametrize(
    "history",
    [
        [PaymentReversed("P", "")],
        [OpeningBalanceSet(MARCH, Decimal("1")), OpeningBalanceSet(MARCH, Decimal("1"))],
        [PaymentReceived.of("P", date(2025, 3, 1), Decimal("1"), "b")] * 2,
        [AccrualPosted("C", MARCH, Decimal("1"), None, Decimal("1"))] * 2,
        [CorrectionPosted("C", MARCH, Decimal("1"), "")] * 2,
        [PaymentReceived.of("P", date(2025, 3, 1), Decimal("1"), "b"), PaymentReversed("P", ""),
         PaymentReversed("P", "")],
    ],
)  # fmt: skip
def test_impossible_history_is_refused(history: list[LedgerEvent]) -> None:
    with pytest.raises(InconsistentStream):
        ServiceLedger.from_history("100200300401", "electricity", history)


# --- what the read models can store -------------------------------------------------------------

NEAR_MAX = Decimal("9999999999.99")  # just under the application's limit of one amount (10 billion)


def test_totals_beyond_the_stored_range_are_refused_and_change_nothing() -> None:
    """Amounts each far below the limit, but a month's total (and the balance) would reach
    STORED_LIMIT (NUMERIC(14,2)): the fact that would get there is refused, the stream unchanged."""
    ledger = new_ledger()
    for i in range(99):
        ledger.post_correction(f"COR-{i}", MARCH, NEAR_MAX, "recount")
    before = ledger.version
    ledger.post_correction("COR-99", MARCH, NEAR_MAX, "recount")  # 999,999,999,999.00: still stored
    with pytest.raises(BeyondStoredRange, match=r"corrections of 100200300401/electricity for 2025-03"):
        ledger.post_correction("COR-100", MARCH, Decimal("1.00"), "recount")
    assert ledger.version == before + 1
    assert not ledger.knows_correction("COR-100")
    # A fact that brings the totals back is fine: a negative correction in another month.
    assert ledger.post_correction("COR-101", Period(2025, 4), -NEAR_MAX, "recount")


def test_the_balance_beyond_the_stored_range_is_refused_in_every_later_month() -> None:
    ledger = new_ledger()
    ledger.set_opening_balance(Period(2025, 1), Decimal("-999999999000.00"))
    ledger.receive_payment("BANK-1", date(2025, 3, 1), Decimal("999.00"), "Halyk")  # -999,999,999,999.00
    # A payment in January moves every later balance below -10^12: refused, whichever month it names.
    with pytest.raises(BeyondStoredRange, match=r"closing_balance .* -1000000000000\.00"):
        ledger.receive_payment("BANK-2", date(2025, 1, 5), Decimal("1.00"), "Halyk")
    # Reversing the March payment brings the balance back up: fine.
    assert ledger.reverse_payment("BANK-1", "cancelled")
    # And a stream loaded from its history is checked the same way.
    rebuilt = ServiceLedger.from_history(ledger.account_no, ledger.service_code, _history(ledger))
    with pytest.raises(BeyondStoredRange):
        rebuilt.post_accrual("CHG-1", MARCH, NEAR_MAX * 101, None, Decimal("0.00"))


def _history(ledger: ServiceLedger) -> list[LedgerEvent]:
    assert ledger.opening is not None
    payment = ledger.known_payment("BANK-1")
    assert payment is not None
    return [ledger.opening, payment, PaymentReversed("BANK-1", "cancelled")]
