"""The aggregate: the money of one account for one service.

`ServiceLedger` decides which events a command produces, and evolves from events. Each command
method validates, builds its events, applies them to the aggregate and returns them; the caller
appends them to the stream with the expected version `version_before = ledger.version - len(events)`
(or reads `ledger.version` before the call). A command that changes nothing returns `[]`, so
redelivered back-office messages are harmless.

Idempotency rules (the first fact wins, later ones are ignored, never merged):
- a payment is identified by the bank's `payment_id`, whatever the back-office `event_id`: a second
  PaymentReported with a known `payment_id` yields `[]`, even with another amount, date or bank, and
  even after the payment was reversed. `known_payment()` lets the caller compare and log a conflict;
- an accrual by `charge_id`, a correction by `correction_id`, likewise;
- a reversal happens once: reversing a reversed payment yields `[]`; reversing an unknown payment
  raises `UnknownPayment` (the cancellation arrived before the payment: the application parks it);
- the opening balance is set once: the same values again yield `[]`, other values raise
  `OpeningBalanceConflict`.

Range: every total the stream's events add up to (a month's accrued, corrections and paid, every
opening and closing balance) must stay under `STORED_LIMIT` in absolute value, the range of the read
models' NUMERIC(14,2) columns. A command that would break it raises `BeyondStoredRange` (and changes
nothing), so the read models can always store what the stream holds. Checked cheaply: while the sum of
the absolute values of the stream's amounts stays under the limit, no total can reach it; only beyond
that is the period table folded to look.

The aggregate does not require the opening balance before other facts: parking payments until the
account opens is the application's choice, helped by `is_open`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from ledger.domain.errors import (
    BeyondStoredRange,
    InconsistentStream,
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
from ledger.domain.periods import period_table

# The read models' money columns are NUMERIC(14,2): at most 999,999,999,999.99 in absolute value.
STORED_LIMIT = Decimal("1000000000000")


@dataclass
class ServiceLedger:
    """State needed to decide: which ids are known, which payments are reversed. Not the balances:
    those are the projections' business (`periods.py`, `payments.py`)."""

    account_no: str
    service_code: str
    version: int = 0
    opening: OpeningBalanceSet | None = None
    _charges: dict[str, AccrualPosted] = field(default_factory=dict, repr=False)
    _corrections: dict[str, CorrectionPosted] = field(default_factory=dict, repr=False)
    _payments: dict[str, PaymentReceived] = field(default_factory=dict, repr=False)
    _reversed: set[str] = field(default_factory=set, repr=False)
    # The sum of the absolute values of every amount applied (a reversal counts its payment's again):
    # no total of the stream can exceed it.
    _exposure: Decimal = field(default=Decimal(0), repr=False)

    @classmethod
    def from_history(cls, account_no: str, service_code: str, events: Iterable[LedgerEvent]) -> ServiceLedger:
        """Rebuild the aggregate from its stream, oldest event first."""
        ledger = cls(account_no, service_code)
        for event in events:
            ledger.apply(event)
        return ledger

    # --- queries -------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Whether the opening balance (the account's opening) has been recorded."""
        return self.opening is not None

    def known_payment(self, payment_id: str) -> PaymentReceived | None:
        return self._payments.get(payment_id)

    def is_reversed(self, payment_id: str) -> bool:
        return payment_id in self._reversed

    def knows_charge(self, charge_id: str) -> bool:
        return charge_id in self._charges

    def knows_correction(self, correction_id: str) -> bool:
        return correction_id in self._corrections

    def known_charge(self, charge_id: str) -> AccrualPosted | None:
        """The accrual first posted under `charge_id`, to compare with a redelivered one."""
        return self._charges.get(charge_id)

    def known_correction(self, correction_id: str) -> CorrectionPosted | None:
        """The correction first posted under `correction_id`, to compare with a redelivered one."""
        return self._corrections.get(correction_id)

    # --- commands ------------------------------------------------------------------------------

    def set_opening_balance(self, period: Period, amount: Decimal) -> list[LedgerEvent]:
        event = OpeningBalanceSet(period, amount)
        if self.opening is not None:
            if self.opening == event:
                return []
            raise OpeningBalanceConflict(
                f"opening balance already set to {self.opening.amount} for {self.opening.period}, "
                f"refusing {event.amount} for {event.period}"
            )
        return self._record(event)

    def post_accrual(
        self,
        charge_id: str,
        period: Period,
        amount: Decimal,
        tariff: str | None,
        consumption_kwh: Decimal,
        estimated: bool = False,
    ) -> list[LedgerEvent]:
        event = AccrualPosted(charge_id, period, amount, tariff, consumption_kwh, estimated)
        if charge_id in self._charges:
            return []
        return self._record(event)

    def post_correction(
        self, correction_id: str, period: Period, amount: Decimal, reason: str
    ) -> list[LedgerEvent]:
        event = CorrectionPosted(correction_id, period, amount, reason)
        if correction_id in self._corrections:
            return []
        return self._record(event)

    def receive_payment(
        self, payment_id: str, paid_on: date, amount: Decimal, bank: str
    ) -> list[LedgerEvent]:
        event = PaymentReceived.of(payment_id, paid_on, amount, bank)
        if payment_id in self._payments:
            return []
        return self._record(event)

    def reverse_payment(self, payment_id: str, reason: str = "") -> list[LedgerEvent]:
        event = PaymentReversed(payment_id, reason)
        if payment_id not in self._payments:
            raise UnknownPayment(payment_id)
        if payment_id in self._reversed:
            return []
        return self._record(event)

    # --- evolution -----------------------------------------------------------------------------

    def apply(self, event: LedgerEvent) -> None:
        """Evolve by one event of this stream. Raises InconsistentStream on a history the commands
        could not have produced."""
        match event:
            case OpeningBalanceSet():
                if self.opening is not None:
                    raise InconsistentStream("a second OpeningBalanceSet")
                self.opening = event
            case AccrualPosted(charge_id=charge_id):
                if charge_id in self._charges:
                    raise InconsistentStream(f"charge {charge_id!r} posted twice")
                self._charges[charge_id] = event
            case CorrectionPosted(correction_id=correction_id):
                if correction_id in self._corrections:
                    raise InconsistentStream(f"correction {correction_id!r} posted twice")
                self._corrections[correction_id] = event
            case PaymentReceived(payment_id=payment_id):
                if payment_id in self._payments:
                    raise InconsistentStream(f"payment {payment_id!r} received twice")
                self._payments[payment_id] = event
            case PaymentReversed(payment_id=payment_id):
                if payment_id not in self._payments or payment_id in self._reversed:
                    raise InconsistentStream(f"reversal of payment {payment_id!r} is not applicable")
                self._reversed.add(payment_id)
        self._exposure += self._weight(event)
        self.version += 1

    def _weight(self, event: LedgerEvent) -> Decimal:
        if isinstance(event, PaymentReversed):
            return self._payments[event.payment_id].amount
        return abs(event.amount)

    def _record(self, event: LedgerEvent) -> list[LedgerEvent]:
        if self._exposure + self._weight(event) >= STORED_LIMIT:
            self._check_stored_range(event)
        self.apply(event)
        return [event]

    def _check_stored_range(self, event: LedgerEvent) -> None:
        """Raise BeyondStoredRange when a total of the stream with `event` would reach STORED_LIMIT."""
        history: list[LedgerEvent] = [self.opening] if self.opening is not None else []
        history += [*self._charges.values(), *self._corrections.values(), *self._payments.values()]
        history += [PaymentReversed(payment_id, "") for payment_id in self._reversed]
        stream = f"{self.account_no}/{self.service_code}"
        for row in period_table([*history, event]):
            for name in ("opening_balance", "accrued", "corrections", "paid", "closing_balance"):
                value: Decimal = getattr(row, name)
                if abs(value) >= STORED_LIMIT:
                    raise BeyondStoredRange(
                        f"it would make {name} of {stream} for {row.period} {value}; the ledger stores"
                        f" totals and balances under {STORED_LIMIT:,} in absolute value"
                    )
