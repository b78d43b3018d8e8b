"""The period projection: per Almaty calendar month, the opening balance, what was accrued, corrected
and paid, the closing balance and the tariff applied.

Rules (the fold `period_table` and the incremental `PeriodBalances` implement them independently,
and the tests check they agree):

- closing = opening + accrued + corrections - paid, for every row;
- each row's opening is the previous row's closing;
- the first row is the earliest month any event of the stream names (the opening balance's month
  included), and its opening balance is the stream's OpeningBalanceSet amount (0.00 without one).
  The opening balance is "the balance before every movement of the stream", so an event dated
  before the opening month (a prepayment made the day before the account opened, say) still keeps
  every invariant: the table simply starts at that earlier month;
- the table runs without gaps to the latest month any event names, or to the `to_period` asked for:
  months without activity have zero movements and carry the balance;
- an event is counted in the month it names (`period`; a payment in the month of `paid_on`), whenever
  it arrives: a late event for a past month re-rolls every later month;
- a reversed payment counts as if it had never been paid: its amount leaves `paid` of the payment's
  own month (not the month of the reversal, the ledger's events carry no such month) and every later
  balance re-rolls. The month stays in the table's range, as every month an event named does;
- `tariff` is the tariff of the last accrual of the month in stream order (None when the month has
  no accrual, or when that accrual carried none);
- balances are positive when the customer owes, negative for an overpayment.

Amounts are summed as integer tiyn, so the totals are exact whatever the decimal context.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from contracts.money import from_tiyn, to_tiyn
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


@dataclass(frozen=True, slots=True)
class PeriodRow:
    """One month of «Информация по услугам» / «Выписка по услуге»."""

    period: Period
    opening_balance: Decimal
    accrued: Decimal
    corrections: Decimal
    paid: Decimal
    closing_balance: Decimal
    tariff: str | None


# --- the fold -------------------------------------------------------------------------------------


def period_table(
    events: Iterable[LedgerEvent],
    from_period: Period | None = None,
    to_period: Period | None = None,
) -> list[PeriodRow]:
    """Fold a stream (oldest event first) into its period rows, from `from_period` to `to_period`.

    Without bounds the rows run from the first to the last month the events name. `to_period` may
    extend the table past the last active month (carried balance, zero movements) or cut it short.
    `from_period` only filters: balances still roll from the first month. Months before the first
    one have no row. An empty stream has no rows.
    """
    opening = 0
    opening_seen = False
    accrued: dict[Period, int] = {}
    corrections: dict[Period, int] = {}
    paid: dict[Period, int] = {}
    tariffs: dict[Period, str | None] = {}
    named: set[Period] = set()
    payments: dict[str, tuple[Period, int]] = {}
    reversed_ids: set[str] = set()

    for event in events:
        match event:
            case OpeningBalanceSet(period=period, amount=amount):
                if opening_seen:
                    raise InconsistentStream("a second OpeningBalanceSet")
                opening_seen = True
                opening = to_tiyn(amount)
                named.add(period)
            case AccrualPosted(period=period, amount=amount, tariff=tariff):
                accrued[period] = accrued.get(period, 0) + to_tiyn(amount)
                tariffs[period] = tariff
                named.add(period)
            case CorrectionPosted(period=period, amount=amount):
                corrections[period] = corrections.get(period, 0) + to_tiyn(amount)
                named.add(period)
            case PaymentReceived(payment_id=payment_id, period=period, amount=amount):
                if payment_id in payments:
                    raise InconsistentStream(f"payment {payment_id!r} received twice")
                payments[payment_id] = (period, to_tiyn(amount))
                paid[period] = paid.get(period, 0) + to_tiyn(amount)
                named.add(period)
            case PaymentReversed(payment_id=payment_id):
                if payment_id not in payments or payment_id in reversed_ids:
                    raise InconsistentStream(f"reversal of payment {payment_id!r} is not applicable")
                reversed_ids.add(payment_id)
                period, amount_tiyn = payments[payment_id]
                paid[period] -= amount_tiyn

    if not named:
        return []
    rows: list[PeriodRow] = []
    balance = opening
    last = to_period if to_period is not None else max(named)
    for period in Period.span(min(named), last):
        a, c, p = accrued.get(period, 0), corrections.get(period, 0), paid.get(period, 0)
        closing = balance + a + c - p
        if from_period is None or period >= from_period:
            rows.append(_row(period, balance, a, c, p, closing, tariffs.get(period)))
        balance = closing
    return rows


def _row(period: Period, opening: int, accrued: int, corrections: int, paid: int, closing: int,
         tariff: str | None) -> PeriodRow:  # fmt: skip
    return PeriodRow(
        period=period,
        opening_balance=from_tiyn(opening),
        accrued=from_tiyn(accrued),
        corrections=from_tiyn(corrections),
        paid=from_tiyn(paid),
        closing_balance=from_tiyn(closing),
        tariff=tariff,
    )


# --- the incremental projection ----------------------------------------------------------------


class _Movements:
    """One month's movements in tiyn, mutable inside PeriodBalances only."""

    __slots__ = ("accrued", "corrections", "paid", "tariff")

    def __init__(self) -> None:
        self.accrued = 0
        self.corrections = 0
        self.paid = 0
        self.tariff: str | None = None

    def snapshot(self) -> tuple[int, int, int, str | None]:
        return (self.accrued, self.corrections, self.paid, self.tariff)


_NO_MOVEMENTS = (0, 0, 0, None)


class _Payment:
    __slots__ = ("amount", "period", "reversed")

    def __init__(self, period: Period, amount: int) -> None:
        self.period = period
        self.amount = amount
        self.reversed = False


class PeriodBalances:
    """The period projection of one stream, maintained event by event.

    `apply(event)` returns the months whose row changed (appeared, or got other values), in
    ascending order, so an adapter upserts exactly those rows (`rows(changed[0], changed[-1])`
    covers them). After any prefix of a stream, `rows()` equals `period_table()` of that prefix.

    It trusts its input to be a stream the aggregate produced: redeliveries are the adapter's to
    filter (by stream version). A payment id received twice, or a reversal of an unknown or already
    reversed payment, raises InconsistentStream and leaves the projection unchanged.
    """

    __slots__ = ("_first", "_last", "_movements", "_opening", "_opening_seen", "_payments")

    def __init__(self) -> None:
        self._opening = 0
        self._opening_seen = False
        self._movements: dict[Period, _Movements] = {}
        self._payments: dict[str, _Payment] = {}
        self._first: Period | None = None
        self._last: Period | None = None

    @classmethod
    def from_events(cls, events: Iterable[LedgerEvent]) -> PeriodBalances:
        balances = cls()
        for event in events:
            balances.apply(event)
        return balances

    @property
    def first_period(self) -> Period | None:
        return self._first

    @property
    def last_period(self) -> Period | None:
        """The latest month an event named (the table's natural end)."""
        return self._last

    @property
    def balance(self) -> Decimal:
        """The current balance: the closing balance of the last month (0.00 for an empty stream)."""
        total = self._opening
        for movements in self._movements.values():
            total += movements.accrued + movements.corrections - movements.paid
        return from_tiyn(total)

    def apply(self, event: LedgerEvent) -> tuple[Period, ...]:
        """Take one event (in stream order); return the months whose row changed, ascending."""
        match event:
            case OpeningBalanceSet(period=period, amount=amount):
                if self._opening_seen:
                    raise InconsistentStream("a second OpeningBalanceSet")
                self._opening_seen = True
                self._opening = to_tiyn(amount)
                old_range = self._extend(period)
                assert self._first is not None and self._last is not None
                if self._opening != 0:
                    return tuple(Period.span(self._first, self._last))
                return self._new_rows(old_range)
            case AccrualPosted(period=period, amount=amount, tariff=tariff):
                return self._move(period, accrued=to_tiyn(amount), tariff=(tariff,))
            case CorrectionPosted(period=period, amount=amount):
                return self._move(period, corrections=to_tiyn(amount))
            case PaymentReceived(payment_id=payment_id, period=period, amount=amount):
                if payment_id in self._payments:
                    raise InconsistentStream(f"payment {payment_id!r} received twice")
                self._payments[payment_id] = _Payment(period, to_tiyn(amount))
                return self._move(period, paid=to_tiyn(amount))
            case PaymentReversed(payment_id=payment_id):
                payment = self._payments.get(payment_id)
                if payment is None or payment.reversed:
                    raise InconsistentStream(f"reversal of payment {payment_id!r} is not applicable")
                payment.reversed = True
                return self._move(payment.period, paid=-payment.amount)
        raise TypeError(f"not a ledger event: {event!r}")  # pragma: no cover

    def rows(self, from_period: Period | None = None, to_period: Period | None = None) -> list[PeriodRow]:
        """The rows from `from_period` to `to_period`, with the same bounds rules as `period_table`."""
        if self._first is None or self._last is None:
            return []
        last = to_period if to_period is not None else self._last
        rows: list[PeriodRow] = []
        balance = self._opening
        for period in Period.span(self._first, last):
            movements = self._movements.get(period)
            if movements is None:
                a = c = p = 0
                tariff = None
            else:
                a, c, p, tariff = movements.snapshot()
            closing = balance + a + c - p
            if from_period is None or period >= from_period:
                rows.append(_row(period, balance, a, c, p, closing, tariff))
            balance = closing
        return rows

    # --- internals --------------------------------------------------------------------------

    def _extend(self, period: Period) -> tuple[Period, Period] | None:
        """Widen the range to `period`; return the range before (None when there was none)."""
        old = None if self._first is None or self._last is None else (self._first, self._last)
        if old is None:
            self._first = self._last = period
        else:
            self._first = min(old[0], period)
            self._last = max(old[1], period)
        return old

    def _new_rows(self, old: tuple[Period, Period] | None) -> tuple[Period, ...]:
        assert self._first is not None and self._last is not None
        if old is None:
            return tuple(Period.span(self._first, self._last))
        before = tuple(Period.span(self._first, old[0].prev())) if self._first < old[0] else ()
        after = tuple(Period.span(old[1].next(), self._last)) if self._last > old[1] else ()
        return before + after

    def _move(
        self,
        period: Period,
        *,
        accrued: int = 0,
        corrections: int = 0,
        paid: int = 0,
        tariff: tuple[str | None] | None = None,
    ) -> tuple[Period, ...]:
        """Add movements to `period` (`tariff`, when given as a 1-tuple, replaces the month's)."""
        movements = self._movements.get(period)
        if movements is None:
            movements = self._movements[period] = _Movements()
        before = movements.snapshot()
        movements.accrued += accrued
        movements.corrections += corrections
        movements.paid += paid
        if tariff is not None:
            movements.tariff = tariff[0]
        after = movements.snapshot()
        if after == _NO_MOVEMENTS:
            del self._movements[period]
        old_range = self._extend(period)
        assert self._last is not None
        changed = set(self._new_rows(old_range))
        if after != before:
            changed.add(period)
        if accrued + corrections - paid != 0:
            changed.update(Period.span(period, self._last))
        return tuple(sorted(changed))
