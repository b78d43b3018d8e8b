"""Events the ledger publishes on `ledger.events.v1`. Stream: `ledger:{account_no}:{service_code}`.

Amounts are tenge with two decimals. Balances are positive when the customer owes.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import StringConstraints

from contracts.money import Money
from contracts.registry import EventPayload, registry
from contracts.topics import canonical_topic
from contracts.types import AccountNo, NonNegativeDecimal2, PeriodStr, PositiveMoney, ServiceCode, ShortText

TOPIC = canonical_topic("ledger")

ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


def ledger_stream(account_no: str, service_code: str) -> str:
    return f"ledger:{account_no}:{service_code}"


@registry.register("OpeningBalanceSet", version=1, topic=TOPIC)
class OpeningBalanceSet(EventPayload):
    account_no: AccountNo
    service_code: ServiceCode
    period: PeriodStr
    amount: Money


@registry.register("AccrualPosted", version=1, topic=TOPIC)
class AccrualPosted(EventPayload):
    """A charge (from calculator's ChargeCalculated) accrued in its period."""

    account_no: AccountNo
    service_code: ServiceCode
    charge_id: ExternalId
    period: PeriodStr
    amount: Money
    consumption_kwh: NonNegativeDecimal2
    tariff: Annotated[str, StringConstraints(max_length=200)] = ""
    estimated: bool = False


@registry.register("CorrectionPosted", version=1, topic=TOPIC)
class CorrectionPosted(EventPayload):
    """A correction of a period (back-office CorrectionIssued, or an estimate trued up); may be negative."""

    account_no: AccountNo
    service_code: ServiceCode
    correction_id: ExternalId
    period: PeriodStr
    amount: Money
    reason: ShortText


@registry.register("PaymentReceived", version=1, topic=TOPIC)
class PaymentReceived(EventPayload):
    """A bank payment, once per `payment_id`."""

    account_no: AccountNo
    service_code: ServiceCode
    payment_id: ExternalId
    paid_on: date
    period: PeriodStr
    amount: PositiveMoney
    bank: ShortText


@registry.register("PaymentReversed", version=1, topic=TOPIC)
class PaymentReversed(EventPayload):
    """A payment cancelled by the bank: as if it had not happened."""

    account_no: AccountNo
    service_code: ServiceCode
    payment_id: ExternalId
    period: PeriodStr
    amount: PositiveMoney
    reason: ShortText
