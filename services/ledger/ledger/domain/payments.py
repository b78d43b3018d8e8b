"""The payments projection («Платежи»): every payment received on the stream, with its date, amount and
bank, and whether it was reversed. A reversed payment stays listed with `reversed=True` (the API
chooses whether to show it); it no longer counts in the period table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal

from ledger.domain.errors import InconsistentStream
from ledger.domain.events import LedgerEvent, PaymentReceived, PaymentReversed


@dataclass(frozen=True, slots=True)
class PaymentLine:
    payment_id: str
    paid_on: date
    amount: Decimal
    bank: str
    reversed: bool = False


def _sort_key(line: PaymentLine) -> tuple[date, str]:
    return (line.paid_on, line.payment_id)


def _in_range(line: PaymentLine, from_date: date | None, to_date: date | None) -> bool:
    return (from_date is None or line.paid_on >= from_date) and (to_date is None or line.paid_on <= to_date)


class PaymentsView:
    """The payments of one stream, maintained event by event. `apply` returns the line that was added
    or changed (None for events that are not about payments)."""

    __slots__ = ("_lines",)

    def __init__(self) -> None:
        self._lines: dict[str, PaymentLine] = {}

    @classmethod
    def from_events(cls, events: Iterable[LedgerEvent]) -> PaymentsView:
        view = cls()
        for event in events:
            view.apply(event)
        return view

    def apply(self, event: LedgerEvent) -> PaymentLine | None:
        match event:
            case PaymentReceived(payment_id=payment_id):
                if payment_id in self._lines:
                    raise InconsistentStream(f"payment {payment_id!r} received twice")
                line = PaymentLine(payment_id, event.paid_on, event.amount, event.bank)
            case PaymentReversed(payment_id=payment_id):
                known = self._lines.get(payment_id)
                if known is None or known.reversed:
                    raise InconsistentStream(f"reversal of payment {payment_id!r} is not applicable")
                line = replace(known, reversed=True)
            case _:
                return None
        self._lines[line.payment_id] = line
        return line

    def lines(
        self, from_date: date | None = None, to_date: date | None = None, *, include_reversed: bool = True
    ) -> list[PaymentLine]:
        """Payments with `from_date <= paid_on <= to_date` (bounds optional, both inclusive), by date
        then payment id."""
        return sorted(
            (
                line
                for line in self._lines.values()
                if _in_range(line, from_date, to_date) and (include_reversed or not line.reversed)
            ),
            key=_sort_key,
        )


def payment_lines(
    events: Iterable[LedgerEvent],
    from_date: date | None = None,
    to_date: date | None = None,
    *,
    include_reversed: bool = True,
) -> list[PaymentLine]:
    """The payments view of a stream as a fold (same result as `PaymentsView`)."""
    return PaymentsView.from_events(events).lines(from_date, to_date, include_reversed=include_reversed)
