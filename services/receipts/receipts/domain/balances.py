"""A service's money per month, from the ledger's events, by the ledger's own rules.

- closing = opening + accrued + corrections − paid, for every month;
- each month's opening is the previous month's closing; the first month's opening is the stream's
  OpeningBalanceSet amount (0.00 without one);
- the months run without gaps from the earliest to the latest month any entry names;
- an entry counts in the month it names, whenever it arrives: a late entry re-rolls every later month;
- a reversed payment counts as never paid (its month stays in the range);
- positive balances mean the customer owes; negative ones are an overpayment.

Sums are integer tiyn, so they are exact.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from contracts.money import from_tiyn, to_tiyn
from receipts.domain import periods

EntryKind = Literal["opening", "accrual", "correction", "payment"]


@dataclass(frozen=True, slots=True)
class Entry:
    kind: EntryKind
    period: str
    amount: Decimal
    reversed: bool = False


@dataclass(frozen=True, slots=True)
class PeriodFigures:
    period: str
    opening_balance: Decimal
    accrued: Decimal
    corrections: Decimal
    paid: Decimal
    closing_balance: Decimal


def period_table(entries: Iterable[Entry]) -> list[PeriodFigures]:
    """The months of one account's service, oldest first (none for no entries)."""
    opening = 0
    accrued: dict[str, int] = {}
    corrections: dict[str, int] = {}
    paid: dict[str, int] = {}
    named: set[str] = set()
    for entry in entries:
        named.add(entry.period)
        amount = to_tiyn(entry.amount)
        if entry.kind == "opening":
            opening = amount
        elif entry.kind == "accrual":
            accrued[entry.period] = accrued.get(entry.period, 0) + amount
        elif entry.kind == "correction":
            corrections[entry.period] = corrections.get(entry.period, 0) + amount
        elif not entry.reversed:
            paid[entry.period] = paid.get(entry.period, 0) + amount
    rows: list[PeriodFigures] = []
    if not named:
        return rows
    balance = opening
    for period in periods.span(min(named), max(named)):
        a, c, p = accrued.get(period, 0), corrections.get(period, 0), paid.get(period, 0)
        closing = balance + a + c - p
        rows.append(
            PeriodFigures(
                period, from_tiyn(balance), from_tiyn(a), from_tiyn(c), from_tiyn(p), from_tiyn(closing)
            )
        )
        balance = closing
    return rows


def figures_for(rows: list[PeriodFigures], period: str) -> PeriodFigures:
    """The month's figures; a month past the last active one carries its closing balance, one before the
    first has nothing."""
    carried = Decimal("0.00")
    for row in rows:
        if row.period == period:
            return row
        if row.period > period:
            break
        carried = row.closing_balance
    zero = Decimal("0.00")
    return PeriodFigures(period, carried, zero, zero, zero, carried)
