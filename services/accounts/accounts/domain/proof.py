"""Proof of ownership for linking an account: the month and the amount of its last payment.

"Last payment" is the latest payment not reversed: by `paid_on`, then by the order of the ledger's
stream (`stream_version`). The amount must match to the tiyn. An unknown account, an account without
a payment, a wrong month, a wrong amount, or a reversed payment all fail the same way: the caller
learns nothing about which part was wrong, nor whether the account exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    """One payment as the proof projection keeps it."""

    payment_id: str
    paid_on: date
    amount: Decimal
    stream_id: str
    stream_version: int
    reversed: bool = False


@dataclass(frozen=True, slots=True)
class LinkProof:
    account_no: str
    month: str  # YYYY-MM
    amount: Decimal


def last_payment(payments: Iterable[PaymentRecord]) -> PaymentRecord | None:
    """The latest payment not reversed (paid_on, then ledger stream order; stream id breaks a tie)."""
    candidates = [p for p in payments if not p.reversed]
    if not candidates:
        return None
    return max(candidates, key=lambda p: (p.paid_on, p.stream_version, p.stream_id))


def proof_matches(account_known: bool, payments: Iterable[PaymentRecord], proof: LinkProof) -> bool:
    latest = last_payment(payments)
    # Evaluate every part, so that no failure reason takes a different path.
    month_ok = latest is not None and latest.paid_on.strftime("%Y-%m") == proof.month
    amount_ok = latest is not None and latest.amount == proof.amount
    return account_known and month_ok and amount_ok
