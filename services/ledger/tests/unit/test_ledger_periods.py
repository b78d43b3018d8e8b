from datetime import date
from decimal import Decimal

import pytest

from ledger.domain.errors import InconsistentStream
from ledger.domain.events import (
    AccrualPosted,
    CorrectionPosted,
    LedgerEvent,
    OpeningBalanceSet,
    PaymentReceived,
    PaymentReversed,
)
from ledger.domain.period import Period
from ledger.domain.periods import PeriodBalances, PeriodRow, period_table

JAN, FEB, MAR, APR, MAY = (Period(2025, m) for m in range(1, 6))
DEC = Period(2024, 12)

Row = tuple[str, str, str, str, str, str, str | None]


def flat(rows: list[PeriodRow]) -> list[Row]:
    """(period, opening, accrued, corrections, paid, closing, tariff) as strings, for readable asserts."""
    return [
        (str(r.period), str(r.opening_balance), str(r.accrued), str(r.corrections), str(r.paid),
         str(r.closing_balance), r.tariff)
        for r in rows
    ]  # fmt: skip


def accrual(
    charge_id: str, period: Period, amount: str, tariff: str | None = "31.85 ₸/кВт·ч"
) -> AccrualPosted:
    return AccrualPosted(charge_id, period, Decimal(amount), tariff, Decimal("100.00"))


def payment(payment_id: str, paid_on: date, amount: str) -> PaymentReceived:
    return PaymentReceived.of(payment_id, paid_on, Decimal(amount), "Halyk")


BASE: list[LedgerEvent] = [
    OpeningBalanceSet(JAN, Decimal("1000.00")),
    accrual("CH-JAN", JAN, "3185.00"),
    payment("P-1", date(2025, 1, 20), "4000.00"),
    accrual("CH-MAR", MAR, "2000.00", "tiered: 25.00/31.85/40.00"),
]


def both(
    events: list[LedgerEvent], from_period: Period | None = None, to_period: Period | None = None
) -> list[Row]:
    """The fold's rows, after checking the incremental projection gives the same."""
    folded = period_table(events, from_period, to_period)
    assert PeriodBalances.from_events(events).rows(from_period, to_period) == folded
    return flat(folded)


def test_empty_stream_has_no_rows() -> None:
    assert period_table([]) == []
    assert PeriodBalances().rows(JAN, MAR) == []
    assert PeriodBalances().balance == Decimal("0.00")


def test_months_roll_and_gaps_are_filled() -> None:
    assert both(BASE) == [
        ("2025-01", "1000.00", "3185.00", "0.00", "4000.00", "185.00", "31.85 ₸/кВт·ч"),
        ("2025-02", "185.00", "0.00", "0.00", "0.00", "185.00", None),
        ("2025-03", "185.00", "2000.00", "0.00", "0.00", "2185.00", "tiered: 25.00/31.85/40.00"),
    ]
    assert PeriodBalances.from_events(BASE).balance == Decimal("2185.00")


def test_to_period_extends_with_carried_balance_or_cuts() -> None:
    assert both(BASE, to_period=MAY)[-2:] == [
        ("2025-04", "2185.00", "0.00", "0.00", "0.00", "2185.00", None),
        ("2025-05", "2185.00", "0.00", "0.00", "0.00", "2185.00", None),
    ]
    assert [row[0] for row in both(BASE, to_period=FEB)] == ["2025-01", "2025-02"]
    assert both(BASE, to_period=DEC) == []


def test_from_period_filters_but_balances_roll_from_the_start() -> None:
    assert both(BASE, MAR, APR) == [
        ("2025-03", "185.00", "2000.00", "0.00", "0.00", "2185.00", "tiered: 25.00/31.85/40.00"),
        ("2025-04", "2185.00", "0.00", "0.00", "0.00", "2185.00", None),
    ]
    assert [row[0] for row in both(BASE, DEC, FEB)] == ["2025-01", "2025-02"]
    assert both(BASE, APR, MAR) == []


def test_late_correction_for_an_old_month_re_rolls_every_later_month() -> None:
    late = [*BASE, CorrectionPosted("COR-1", JAN, Decimal("-100.00"), "meter recount")]
    assert both(late) == [
        ("2025-01", "1000.00", "3185.00", "-100.00", "4000.00", "85.00", "31.85 ₸/кВт·ч"),
        ("2025-02", "85.00", "0.00", "0.00", "0.00", "85.00", None),
        ("2025-03", "85.00", "2000.00", "0.00", "0.00", "2085.00", "tiered: 25.00/31.85/40.00"),
    ]
    balances = PeriodBalances.from_events(BASE)
    assert balances.apply(late[-1]) == (JAN, FEB, MAR)


def test_event_before_the_first_month_prepends_rows_and_keeps_the_opening_first() -> None:
    """A payment dated before the opening month: the table starts there, with the opening balance as
    the balance before every movement."""
    early = [*BASE, payment("P-0", date(2024, 12, 30), "500.00")]
    assert both(early)[:2] == [
        ("2024-12", "1000.00", "0.00", "0.00", "500.00", "500.00", None),
        ("2025-01", "500.00", "3185.00", "0.00", "4000.00", "-315.00", "31.85 ₸/кВт·ч"),
    ]
    assert PeriodBalances.from_events(BASE).apply(early[-1]) == (DEC, JAN, FEB, MAR)


def test_reversed_payment_leaves_paid_of_its_own_month() -> None:
    """A reversal counts as if the payment never happened: January's paid drops, whatever month the
    cancellation arrives in, and every later month re-rolls."""
    events = [*BASE, payment("P-2", date(2025, 3, 5), "185.00"), PaymentReversed("P-1", "returned by bank")]
    assert both(events) == [
        ("2025-01", "1000.00", "3185.00", "0.00", "0.00", "4185.00", "31.85 ₸/кВт·ч"),
        ("2025-02", "4185.00", "0.00", "0.00", "0.00", "4185.00", None),
        ("2025-03", "4185.00", "2000.00", "0.00", "185.00", "6000.00", "tiered: 25.00/31.85/40.00"),
    ]
    assert PeriodBalances.from_events(events[:-1]).apply(events[-1]) == (JAN, FEB, MAR)


def test_overpayment_is_a_negative_balance() -> None:
    events = [accrual("CH-1", JAN, "100.00"), payment("P-1", date(2025, 1, 5), "250.00")]
    assert both(events)[-1][-2] == "-150.00"


def test_tariff_is_the_last_accruals_in_the_month() -> None:
    events = [accrual("CH-1", JAN, "100.00", "flat 31.85"), accrual("CH-2", JAN, "5.00", "tiered")]
    assert both(events)[0][-1] == "tiered"
    assert both([*events, accrual("CH-3", JAN, "0.00", None)])[0][-1] is None


def test_no_opening_balance_opens_at_zero() -> None:
    assert both([CorrectionPosted("C", FEB, Decimal("12.34"), "r")]) == [
        ("2025-02", "0.00", "0.00", "12.34", "0.00", "12.34", None)
    ]


def test_opening_balance_arriving_late_shifts_every_row() -> None:
    events: list[LedgerEvent] = [accrual("CH-1", FEB, "100.00"), OpeningBalanceSet(JAN, Decimal("50.00"))]
    assert both(events) == [
        ("2025-01", "50.00", "0.00", "0.00", "0.00", "50.00", None),
        ("2025-02", "50.00", "100.00", "0.00", "0.00", "150.00", "31.85 ₸/кВт·ч"),
    ]
    assert PeriodBalances.from_events(events[:1]).apply(events[1]) == (JAN, FEB)


def test_changed_periods_of_incremental_updates() -> None:
    balances = PeriodBalances()
    assert balances.apply(OpeningBalanceSet(JAN, Decimal("0.00"))) == (JAN,)
    # A later month: the gap and the new month appear.
    assert balances.apply(accrual("CH-MAR", MAR, "10.00")) == (FEB, MAR)
    # A zero-amount correction in a month inside the range changes no row.
    assert balances.apply(CorrectionPosted("C0", FEB, Decimal("0.00"), "nothing")) == ()
    # A zero accrual changes only its month's tariff.
    assert balances.apply(accrual("CH-FEB", FEB, "0.00", "flat")) == (FEB,)
    # A payment in January moves January and every later month.
    assert balances.apply(payment("P-1", date(2025, 1, 9), "1.00")) == (JAN, FEB, MAR)
    assert balances.first_period == JAN
    assert balances.last_period == MAR


def test_incremental_refuses_an_inconsistent_stream_without_changing() -> None:
    balances = PeriodBalances.from_events(BASE)
    before = balances.rows()
    with pytest.raises(InconsistentStream):
        balances.apply(PaymentReversed("P-unknown", ""))
    with pytest.raises(InconsistentStream):
        balances.apply(payment("P-1", date(2025, 1, 20), "4000.00"))
    with pytest.raises(InconsistentStream):
        balances.apply(OpeningBalanceSet(JAN, Decimal("1000.00")))
    assert balances.rows() == before
    balances.apply(PaymentReversed("P-1", ""))
    with pytest.raises(InconsistentStream):
        balances.apply(PaymentReversed("P-1", ""))
    assert balances.rows() == period_table([*BASE, PaymentReversed("P-1", "")])


@pytest.mark.parametrize(
    "events",
    [
        [PaymentReversed("P", "")],
        [OpeningBalanceSet(JAN, Decimal("1")), OpeningBalanceSet(JAN, Decimal("1"))],
        [payment("P", date(2025, 1, 1), "1.00")] * 2,
        [payment("P", date(2025, 1, 1), "1.00"), PaymentReversed("P", ""), PaymentReversed("P", "")],
    ],
)
def test_fold_refuses_an_inconsistent_stream(events: list[LedgerEvent]) -> None:
    with pytest.raises(InconsistentStream):
        period_table(events)
