"""The ledger's domain events. One stream = one (account_no, service_code); the stream key is not
repeated inside the events, the event store and the envelope carry it.

Every event validates itself on construction, so a stream can only hold well-formed money:
amounts are `Decimal` (a float is refused, it cannot carry tiyn exactly) with at most two decimals
(a third decimal is refused, never rounded: rounding is the producer's business, see RATING.md), and
they are normalised to exactly two decimals (`Decimal("5")` becomes `Decimal("5.00")`).

Signs: an opening balance and a correction may have any sign; an accrual is >= 0 (a negative
adjustment is a correction); a payment is > 0. Balances are positive when the customer owes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from contracts.money import from_tiyn, to_tiyn
from ledger.domain.errors import InvalidLedgerEvent
from ledger.domain.period import Period
from ledger.domain.shared import shared

_MONEY_LIMIT = Decimal("1e13")

Sign = Literal["any", "non_negative", "positive"]


def checked_money(value: object, name: str, sign: Sign = "any") -> Decimal:
    """`value` as a two-decimal Decimal, or InvalidLedgerEvent. Never rounds."""
    if not isinstance(value, Decimal):
        raise InvalidLedgerEvent(f"{name} must be a Decimal, not {type(value).__name__}")
    if not value.is_finite():
        raise InvalidLedgerEvent(f"{name} must be finite, got {value}")
    if abs(value) >= _MONEY_LIMIT:
        raise InvalidLedgerEvent(f"{name} is out of range: {value}")
    try:
        tiyn = to_tiyn(value)
    except ValueError as exc:
        raise InvalidLedgerEvent(f"{name} has more than two decimals: {value}") from exc
    if sign == "positive" and tiyn <= 0:
        raise InvalidLedgerEvent(f"{name} must be greater than 0, got {value}")
    if sign == "non_negative" and tiyn < 0:
        raise InvalidLedgerEvent(f"{name} must not be negative, got {value}")
    return from_tiyn(tiyn)


def _checked_id(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidLedgerEvent(f"{name} must be a non-empty string")
    return value


def _checked_text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidLedgerEvent(f"{name} must be a string")
    return value


def _checked_period(value: object, name: str = "period") -> Period:
    if not isinstance(value, Period):
        raise InvalidLedgerEvent(f"{name} must be a Period, not {type(value).__name__}")
    return value


def _set(event: object, field: str, value: object) -> None:
    object.__setattr__(event, field, value)


@dataclass(frozen=True, slots=True)
class OpeningBalanceSet:
    """The balance brought forward when the account opened, at the start of `period`.

    It is set once per stream (the aggregate enforces it). The period table shows it as the opening
    balance of its first row.
    """

    period: Period
    amount: Decimal

    def __post_init__(self) -> None:
        _checked_period(self.period)
        _set(self, "amount", checked_money(self.amount, "amount"))


@dataclass(frozen=True, slots=True)
class AccrualPosted:
    """A monthly charge (from calculator's ChargeCalculated). `tariff` is a human description of the
    tariff applied, e.g. "31.85 ₸/кВт·ч" or a tiered breakdown; None when the charge carries none."""

    charge_id: str
    period: Period
    amount: Decimal
    tariff: str | None
    consumption_kwh: Decimal
    estimated: bool = False

    def __post_init__(self) -> None:
        _checked_id(self.charge_id, "charge_id")
        _checked_period(self.period)
        _set(self, "amount", checked_money(self.amount, "amount", "non_negative"))
        if self.tariff is not None:
            _set(self, "tariff", shared(_checked_text(self.tariff, "tariff")))
        _set(self, "consumption_kwh", checked_money(self.consumption_kwh, "consumption_kwh", "non_negative"))
        if not isinstance(self.estimated, bool):
            raise InvalidLedgerEvent("estimated must be a bool")


@dataclass(frozen=True, slots=True)
class CorrectionPosted:
    """A correction of `period` (back-office CorrectionIssued, or an estimate trued up); any sign."""

    correction_id: str
    period: Period
    amount: Decimal
    reason: str

    def __post_init__(self) -> None:
        _checked_id(self.correction_id, "correction_id")
        _checked_period(self.period)
        _set(self, "amount", checked_money(self.amount, "amount"))
        _set(self, "reason", shared(_checked_text(self.reason, "reason")))


@dataclass(frozen=True, slots=True)
class PaymentReceived:
    """A bank payment. `period` is the Almaty month of `paid_on` (a local calendar date) and must
    match it; `PaymentReceived.of(...)` derives it."""

    payment_id: str
    period: Period
    paid_on: date
    amount: Decimal
    bank: str

    def __post_init__(self) -> None:
        _checked_id(self.payment_id, "payment_id")
        _checked_period(self.period)
        if isinstance(self.paid_on, datetime) or not isinstance(self.paid_on, date):
            raise InvalidLedgerEvent("paid_on must be a date")
        if Period.of_date(self.paid_on) != self.period:
            raise InvalidLedgerEvent(f"period {self.period} is not the month of paid_on {self.paid_on}")
        _set(self, "amount", checked_money(self.amount, "amount", "positive"))
        _set(self, "bank", shared(_checked_text(self.bank, "bank")))
        _set(self, "paid_on", shared(self.paid_on))

    @classmethod
    def of(cls, payment_id: str, paid_on: date, amount: Decimal, bank: str) -> PaymentReceived:
        if isinstance(paid_on, datetime) or not isinstance(paid_on, date):
            raise InvalidLedgerEvent("paid_on must be a date")
        return cls(payment_id, Period.of_date(paid_on), paid_on, amount, bank)


@dataclass(frozen=True, slots=True)
class PaymentReversed:
    """A received payment is cancelled (back-office PaymentCancelled): it counts as never paid."""

    payment_id: str
    reason: str

    def __post_init__(self) -> None:
        _checked_id(self.payment_id, "payment_id")
        _set(self, "reason", shared(_checked_text(self.reason, "reason")))


LedgerEvent = OpeningBalanceSet | AccrualPosted | CorrectionPosted | PaymentReceived | PaymentReversed

EVENT_TYPES: dict[str, type[LedgerEvent]] = {
    cls.__name__: cls
    for cls in (OpeningBalanceSet, AccrualPosted, CorrectionPosted, PaymentReceived, PaymentReversed)
}
