"""The rows a period filter («с … по …») shows, from a stream's stored period rows.

The stored rows run from the stream's first month to the last month any event named. A window
[first, last] shows:
- the stored rows inside it;
- after the stream's last stored month, months that carry its closing balance with no movement, up
  to `carry_until` (normally the current month): a quiet account still shows this month's balance,
  but no row is invented for the future;
- nothing before the stream's first month (the account had no money there).

This equals `PeriodBalances.rows(first, min(last, max(last_stored, carry_until)))` of the stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from contracts.money import ZERO
from ledger.domain.period import Period
from ledger.domain.periods import PeriodRow

MAX_MONTHS = 120  # a filter spans at most ten years


def window(
    stored_in_window: Sequence[PeriodRow],
    last_stored: Period,
    balance: Decimal,
    first: Period,
    last: Period,
    carry_until: Period,
) -> list[PeriodRow]:
    """`stored_in_window`: the stream's stored rows with first <= period <= last; `last_stored` and
    `balance`: the stream's last stored month and its closing balance."""
    shown = sorted((row for row in stored_in_window if first <= row.period <= last), key=lambda r: r.period)
    end = min(last, carry_until)
    if last_stored < end:
        for period in Period.span(max(last_stored.next(), first), end):
            shown.append(PeriodRow(period, balance, ZERO, ZERO, ZERO, balance, None))
    return shown


def months_between(first: Period, last: Period) -> int:
    """How many months [first, last] covers (0 when first > last)."""
    return max(0, last.ordinal - first.ordinal + 1)
