"""Events the calculator publishes on `calculator.events.v1`.

Streams: `meter-readings:{account_no}` (readings and the charges rated from them),
`billing-period:{account_no}:{period}` (estimates, true-ups, completion), `tariff-catalog`.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from contracts.backoffice import TierNormRow
from contracts.money import Money
from contracts.registry import EventPayload, registry
from contracts.topics import canonical_topic
from contracts.types import AccountNo, NonNegativeDecimal2, PeriodStr, ServiceCode, TariffOption

TOPIC = canonical_topic("calculator")

ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Rate = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=4)]


@registry.register("TariffPublished", version=1, topic=TOPIC)
class TariffPublished(EventPayload):
    """A tariff row of the catalog (net KZT/kWh) in force from a date, with the tier norms."""

    effective_from: date
    flat: Rate
    tier1: Rate
    tier2: Rate
    tier3: Rate
    norms: list[TierNormRow]


@registry.register("VatRateChanged", version=1, topic=TOPIC)
class VatRateChanged(EventPayload):
    effective_from: date
    rate: Annotated[Decimal, Field(ge=0, lt=1)]


class ReadingPoint(EventPayload):
    date: date
    value: NonNegativeDecimal2


@registry.register("ReadingSubmitted", version=1, topic=TOPIC)
class ReadingSubmitted(EventPayload):
    """An accepted meter reading, from the customer (portal/API) or the grid company."""

    reading_id: ExternalId
    account_no: AccountNo
    meter_serial: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    reading_date: date
    value: NonNegativeDecimal2
    source: Literal["customer", "grid"]
    confirmed_implausible: bool = False


class ChargeLine(EventPayload):
    """One line of «Расчёт начисления по счётчику»: a tier (or flat) within one tariff piece."""

    from_date: date
    to_date: date
    tier: Literal["1", "2", "3", "flat"]
    limit_kwh: Money | None
    kwh: NonNegativeDecimal2
    rate: Rate
    amount: Money


@registry.register("ChargeCalculated", version=1, topic=TOPIC)
class ChargeCalculated(EventPayload):
    """A rated charge: from an accepted reading, or an estimate for a period without one (RATING.md §6)."""

    charge_id: ExternalId
    account_no: AccountNo
    service_code: ServiceCode = "electricity"
    period: PeriodStr
    previous: ReadingPoint | None
    current: ReadingPoint | None
    days: int = Field(ge=0)
    consumption_kwh: NonNegativeDecimal2
    tariff_option_applied: TariffOption
    lines: list[ChargeLine]
    net_total: Money
    vat: Money
    total: Money
    estimated: bool = False


@registry.register("EstimateReversed", version=1, topic=TOPIC)
class EstimateReversed(EventPayload):
    """An actual reading replaced estimates: their amount is reversed in the reading's period (negative)."""

    correction_id: ExternalId
    account_no: AccountNo
    service_code: ServiceCode = "electricity"
    period: PeriodStr
    amount: Money
    reversed_charge_ids: list[ExternalId]
    reason: Annotated[str, StringConstraints(max_length=300)] = "Перерасчёт по фактическим показаниям"


@registry.register("PeriodBilled", version=1, topic=TOPIC)
class PeriodBilled(EventPayload):
    """The account's charges for the period are all posted: receipts may issue the bill."""

    account_no: AccountNo
    period: PeriodStr
    charge_ids: list[ExternalId]
