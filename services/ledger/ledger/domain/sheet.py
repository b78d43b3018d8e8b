"""The period table kept as stored rows: re-roll a stream's rows from what is stored plus new movements.

The read model `ledger_periods` holds, per stream, exactly the rows of `period_table` (see
`periods.py` for the rules). A projection that applies a batch does not keep every stream in memory:
it loads the affected streams' stored rows into a `PeriodSheet`, applies each new event as a
`Movement`, and writes back `changed()`: the rows that appeared or got other values (a late event for a
past month re-rolls every later month).

A `Movement` is what one canonical ledger event does to the table. It carries everything the table
needs, so no other state is required: a reversal names the reversed payment's month and amount (the
canonical PaymentReversed carries both), an opening balance is "the balance before every movement of
the stream". Amounts are integer tiyn throughout (`TiynRow`); `rows()` gives the Decimal `PeriodRow`s.

Given the rows `period_table(events[:k])` and the movements of `events[k:]`, the sheet yields
`period_table(events)` (the property tests check this for every split of random streams).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from contracts.money import from_tiyn, to_tiyn
from ledger.domain.period import Period, period_of_ordinal
from ledger.domain.periods import PeriodRow


@dataclass(frozen=True, slots=True)
class Movement:
    """One event's effect on the period table, in tiyn."""

    period: Period
    accrued: int = 0
    corrections: int = 0
    paid: int = 0
    # An accrual replaces its month's tariff (None when it carries none); other events leave it.
    sets_tariff: bool = False
    tariff: str | None = None
    # An opening balance: the balance before every movement of the stream.
    opening: int | None = None

    @classmethod
    def opening_balance(cls, period: Period, amount: int) -> Movement:
        return cls(period, opening=amount)

    @classmethod
    def accrual(cls, period: Period, amount: int, tariff: str | None) -> Movement:
        return cls(period, accrued=amount, sets_tariff=True, tariff=tariff)

    @classmethod
    def correction(cls, period: Period, amount: int) -> Movement:
        return cls(period, corrections=amount)

    @classmethod
    def payment(cls, period: Period, amount: int) -> Movement:
        return cls(period, paid=amount)

    @classmethod
    def reversal(cls, period: Period, amount: int) -> Movement:
        """The reversal of a payment of `amount` received in `period`: it leaves that month's paid."""
        return cls(period, paid=-amount)


@dataclass(frozen=True, slots=True)
class TiynRow:
    """A period row in integer tiyn (what the projection stores, converted at the database)."""

    period: Period
    opening: int
    accrued: int
    corrections: int
    paid: int
    closing: int
    tariff: str | None

    @classmethod
    def of(cls, row: PeriodRow) -> TiynRow:
        return cls(
            row.period,
            to_tiyn(row.opening_balance),
            to_tiyn(row.accrued),
            to_tiyn(row.corrections),
            to_tiyn(row.paid),
            to_tiyn(row.closing_balance),
            row.tariff,
        )

    def to_row(self) -> PeriodRow:
        return PeriodRow(
            period=self.period,
            opening_balance=from_tiyn(self.opening),
            accrued=from_tiyn(self.accrued),
            corrections=from_tiyn(self.corrections),
            paid=from_tiyn(self.paid),
            closing_balance=from_tiyn(self.closing),
            tariff=self.tariff,
        )


class _Month:
    __slots__ = ("accrued", "corrections", "paid", "tariff")

    def __init__(
        self, accrued: int = 0, corrections: int = 0, paid: int = 0, tariff: str | None = None
    ) -> None:
        self.accrued = accrued
        self.corrections = corrections
        self.paid = paid
        self.tariff = tariff


_EMPTY = _Month()


class PeriodSheet:
    """One stream's period rows, loaded from storage and updated by movements.

    The stored rows may be all of the stream's or, what a projection loads (`partial`), its first row,
    its last row and every row from the earliest month the new movements touch: a re-roll never needs
    the others, so `changed()` and `balance` stay exact; the full `rows()` are then not available.
    Months are kept as ordinals (consecutive integers) internally: this is a projection's hot path."""

    __slots__ = ("_changed", "_dirty", "_first", "_last", "_movements", "_opening", "_partial", "_stored")

    def __init__(self, rows: Iterable[PeriodRow | TiynRow] = ()) -> None:
        stored = sorted(
            (r if isinstance(r, TiynRow) else TiynRow.of(r) for r in rows), key=lambda r: r.period
        )
        self._stored: dict[int, TiynRow] = {row.period.ordinal: row for row in stored}
        self._opening = stored[0].opening if stored else 0
        self._movements: dict[int, _Month] = {
            o: _Month(row.accrued, row.corrections, row.paid, row.tariff) for o, row in self._stored.items()
        }
        self._first: int | None = stored[0].period.ordinal if stored else None
        self._last: int | None = stored[-1].period.ordinal if stored else None
        # The earliest month whose row may differ from the stored one (None: nothing changed yet).
        self._dirty: int | None = None
        self._partial = False
        self._changed: list[TiynRow] | None = None

    @classmethod
    def partial(cls, rows: Iterable[TiynRow]) -> PeriodSheet:
        """A partial load: the first and the last stored rows, and every row from the earliest month the
        movements to come touch (all rows, when that is before the first or an opening balance)."""
        sheet = cls(rows)
        sheet._partial = True
        return sheet

    @property
    def first_period(self) -> Period | None:
        return period_of_ordinal(self._first) if self._first is not None else None

    @property
    def last_period(self) -> Period | None:
        return period_of_ordinal(self._last) if self._last is not None else None

    def apply(self, movement: Movement) -> None:
        self._changed = None
        o = movement.period.ordinal
        self._first = o if self._first is None or o < self._first else self._first
        self._last = o if self._last is None or o > self._last else self._last
        dirty = o
        if movement.opening is not None:
            self._opening = movement.opening
            dirty = self._first  # the opening balance rolls through every row
        if self._dirty is None or dirty < self._dirty:
            self._dirty = dirty
        month = self._movements.get(o)
        if month is None:
            month = self._movements[o] = _Month()
        month.accrued += movement.accrued
        month.corrections += movement.corrections
        month.paid += movement.paid
        if movement.sets_tariff:
            month.tariff = movement.tariff

    def apply_all(self, movements: Iterable[Movement]) -> PeriodSheet:
        for movement in movements:
            self.apply(movement)
        return self

    def tiyn_rows(self) -> list[TiynRow]:
        """Every row from the first to the last month, balances rolled."""
        if self._first is None:
            return []
        assert not self._partial, "a partial load has no full table"
        return self._roll(self._first, self._opening)

    def _roll(self, start: int, balance: int) -> list[TiynRow]:
        """The rows from month `start` to the last, `balance` being the opening balance of `start`."""
        assert self._last is not None
        movements = self._movements
        rows: list[TiynRow] = []
        for o in range(start, self._last + 1):
            month = movements.get(o, _EMPTY)
            closing = balance + month.accrued + month.corrections - month.paid
            rows.append(
                TiynRow(
                    period_of_ordinal(o), balance, month.accrued, month.corrections, month.paid, closing,
                    month.tariff,
                )
            )  # fmt: skip
            balance = closing
        return rows

    def rows(self) -> list[PeriodRow]:
        return [row.to_row() for row in self.tiyn_rows()]

    def changed(self) -> list[TiynRow]:
        """The rows that are new or differ from the stored ones (what to upsert).

        Rows before the earliest touched month cannot have changed, so the roll starts there, from the
        stored opening balance of that month (or from the stream's opening, or from the last stored
        closing balance when the touched months lie after the stored range)."""
        if self._changed is not None:
            return self._changed
        if self._dirty is None or self._first is None:
            return []
        stored = self._stored
        if not stored or self._dirty <= self._first or self._first not in stored:
            start, balance = self._first, self._opening  # new rows in front, or the opening changed
        elif self._dirty in stored:
            start, balance = self._dirty, stored[self._dirty].opening
        else:  # the touched months are all after the stored ones
            tail = max(stored)
            start, balance = tail + 1, stored[tail].closing
        self._changed = [row for row in self._roll(start, balance) if stored.get(row.period.ordinal) != row]
        return self._changed

    def changed_rows(self) -> list[PeriodRow]:
        return [row.to_row() for row in self.changed()]

    @property
    def balance(self) -> int:
        """The current balance in tiyn: the closing balance of the last row."""
        if self._last is None:
            return 0
        changed = self.changed()
        if changed and changed[-1].period.ordinal == self._last:
            return changed[-1].closing
        return self._stored[self._last].closing


def reroll(stored: Sequence[PeriodRow], movements: Iterable[Movement]) -> list[PeriodRow]:
    """The rows to upsert after applying `movements` to a stream whose stored rows are `stored`."""
    return PeriodSheet(stored).apply_all(movements).changed_rows()
