"""Translation between the canonical ledger events (contracts.events.ledger) and the pure domain.

- `to_contract`: a domain event of a stream → the canonical payload to append (the canonical events
  repeat the stream's account and service, and a reversal carries the reversed payment's month and
  amount so that projections need no other state);
- `from_stored`: a stored payload (JSON, any schema version) → the domain event, for loading an
  aggregate and for rebuilds. It is the hot path of both, so it builds the domain dataclasses straight
  from the JSON (they validate themselves) instead of going through the pydantic models;
- `movement_of`: a canonical payload → its effect on the period table.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from contracts.events import ledger as contract
from contracts.money import to_tiyn
from contracts.registry import registry
from ledger.domain.events import (
    AccrualPosted,
    CorrectionPosted,
    LedgerEvent,
    OpeningBalanceSet,
    PaymentReceived,
    PaymentReversed,
)
from ledger.domain.period import parse_period
from ledger.domain.sheet import Movement

EVENT_TYPES = frozenset(
    {"OpeningBalanceSet", "AccrualPosted", "CorrectionPosted", "PaymentReceived", "PaymentReversed"}
)
CURRENT_VERSION = {name: registry.spec(contract.TOPIC, name).version for name in EVENT_TYPES}


class UnknownLedgerEvent(ValueError):
    pass


def to_contract(
    account_no: str, service_code: str, event: LedgerEvent, reversed_payment: PaymentReceived | None = None
) -> BaseModel:
    stream = {"account_no": account_no, "service_code": service_code}
    match event:
        case OpeningBalanceSet():
            return contract.OpeningBalanceSet(**stream, period=str(event.period), amount=event.amount)
        case AccrualPosted():
            return contract.AccrualPosted(
                **stream,
                charge_id=event.charge_id,
                period=str(event.period),
                amount=event.amount,
                consumption_kwh=event.consumption_kwh,
                tariff=event.tariff or "",
                estimated=event.estimated,
            )
        case CorrectionPosted():
            return contract.CorrectionPosted(
                **stream,
                correction_id=event.correction_id,
                period=str(event.period),
                amount=event.amount,
                reason=event.reason,
            )
        case PaymentReceived():
            return contract.PaymentReceived(
                **stream,
                payment_id=event.payment_id,
                paid_on=event.paid_on,
                period=str(event.period),
                amount=event.amount,
                bank=event.bank,
            )
        case PaymentReversed():
            if reversed_payment is None or reversed_payment.payment_id != event.payment_id:
                raise ValueError(f"the reversal of {event.payment_id!r} needs the payment it reverses")
            return contract.PaymentReversed(
                **stream,
                payment_id=event.payment_id,
                period=str(reversed_payment.period),
                amount=reversed_payment.amount,
                reason=event.reason,
            )
    raise TypeError(f"not a ledger event: {event!r}")  # pragma: no cover


def upcast(event_type: str, schema_version: int, payload: dict[str, Any]) -> dict[str, Any]:
    if event_type not in EVENT_TYPES:
        raise UnknownLedgerEvent(event_type)
    if schema_version == CURRENT_VERSION[event_type]:
        return payload
    return registry.upcast(contract.TOPIC, event_type, schema_version, payload)


def from_stored(event_type: str, schema_version: int, payload: dict[str, Any]) -> LedgerEvent:
    """The domain event of a stored canonical payload."""
    p = upcast(event_type, schema_version, payload)
    match event_type:
        case "OpeningBalanceSet":
            return OpeningBalanceSet(parse_period(p["period"]), Decimal(p["amount"]))
        case "AccrualPosted":
            return AccrualPosted(
                p["charge_id"],
                parse_period(p["period"]),
                Decimal(p["amount"]),
                p.get("tariff") or None,
                Decimal(p["consumption_kwh"]),
                bool(p.get("estimated", False)),
            )
        case "CorrectionPosted":
            return CorrectionPosted(
                p["correction_id"], parse_period(p["period"]), Decimal(p["amount"]), p["reason"]
            )
        case "PaymentReceived":
            return PaymentReceived.of(
                p["payment_id"], date.fromisoformat(p["paid_on"]), Decimal(p["amount"]), p["bank"]
            )
        case "PaymentReversed":
            return PaymentReversed(p["payment_id"], p["reason"])
    raise UnknownLedgerEvent(event_type)  # pragma: no cover


def movement_of(payload: BaseModel) -> Movement:
    """What a canonical ledger payload does to its stream's period table."""
    match payload:
        case contract.OpeningBalanceSet():
            return Movement.opening_balance(parse_period(payload.period), to_tiyn(payload.amount))
        case contract.AccrualPosted():
            return Movement.accrual(
                parse_period(payload.period), to_tiyn(payload.amount), payload.tariff or None
            )
        case contract.CorrectionPosted():
            return Movement.correction(parse_period(payload.period), to_tiyn(payload.amount))
        case contract.PaymentReceived():
            return Movement.payment(parse_period(payload.period), to_tiyn(payload.amount))
        case contract.PaymentReversed():
            return Movement.reversal(parse_period(payload.period), to_tiyn(payload.amount))
    raise UnknownLedgerEvent(type(payload).__name__)
