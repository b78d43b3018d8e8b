"""The ledger domain's errors. The application layer maps them: park, dead-letter or reject."""

from __future__ import annotations


class LedgerError(Exception):
    """Base class of every error the ledger domain raises on purpose."""


class InvalidLedgerEvent(LedgerError, ValueError):
    """An event or command argument breaks a rule: a float or a third decimal, a sign, an empty id."""


class BeyondStoredRange(InvalidLedgerEvent):
    """A fact that would take a total of the stream (a month's accrued, corrections or paid, or a
    balance) beyond what the read models store: NUMERIC(14,2), under 10^12 in absolute value."""


class UnknownPayment(LedgerError):
    """A reversal names a payment this stream has not received (yet).

    Back-office messages arrive out of order, so a PaymentCancelled can precede its PaymentReported:
    the application parks the reversal and retries it once the payment is received.
    """

    def __init__(self, payment_id: str) -> None:
        super().__init__(f"payment {payment_id!r} is not known to this ledger")
        self.payment_id = payment_id


class OpeningBalanceConflict(LedgerError):
    """An opening balance is set once; a second one with other values is a conflict to report."""


class InconsistentStream(LedgerError):
    """A history that the aggregate could not have produced (a reversal before its payment, two
    opening balances, a payment id twice). Projections raise it rather than guess."""
