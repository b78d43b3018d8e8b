"""The back-office's ingress messages (shared/design/BACKOFFICE_EVENTS.md): binding, change nothing.

Optional fields may be added; required ones and their meaning are the contract.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from contracts.money import Money
from contracts.registry import EventPayload, registry
from contracts.types import (
    AccountNo,
    NonNegativeDecimal2,
    PeriodStr,
    PositiveMoney,
    ServiceCode,
    ShortText,
    TariffOption,
)

ACCOUNTS = "backoffice.accounts.v1"
PAYMENTS = "backoffice.payments.v1"
READINGS = "backoffice.readings.v1"
TARIFFS = "backoffice.tariffs.v1"
BILLING = "backoffice.billing.v1"
REFERENCE = "backoffice.reference.v1"
REQUESTS = "backoffice.requests.v1"

MeterSerial = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
Rate = Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=4)]


class MeterSpec(EventPayload):
    serial: MeterSerial
    digits: int = Field(ge=4, le=9, description="whole digits of the register")
    installed_on: date
    initial_reading: NonNegativeDecimal2


@registry.register("AccountOpened", version=1, topic=ACCOUNTS)
class AccountOpened(EventPayload):
    """A personal account (лицевой счёт) is opened."""

    account_no: AccountNo
    payer_name: ShortText
    address: ShortText
    residents: int = Field(ge=0, le=100)
    electric_stove: bool
    living_alone: bool
    tariff_option: TariffOption
    district_office_code: Annotated[str, StringConstraints(min_length=1, max_length=20)]
    opened_on: date
    meter: MeterSpec
    opening_balance: Money = Decimal("0.00")


@registry.register("ResidentsChanged", version=1, topic=ACCOUNTS)
class ResidentsChanged(EventPayload):
    """The number of permanent residents changes from a date."""

    account_no: AccountNo
    residents: int = Field(ge=0, le=100)
    effective_from: date


@registry.register("TariffOptionChanged", version=1, topic=ACCOUNTS)
class TariffOptionChanged(EventPayload):
    """The account switches between the flat and the tiered tariff."""

    account_no: AccountNo
    tariff_option: TariffOption
    effective_from: date


@registry.register("PayerChanged", version=1, topic=ACCOUNTS)
class PayerChanged(EventPayload):
    """A new payer (ФИО) from a date."""

    account_no: AccountNo
    payer_name: ShortText
    effective_from: date


@registry.register("MeterReplaced", version=1, topic=ACCOUNTS)
class MeterReplaced(EventPayload):
    """A meter is replaced; the old one's final reading closes its register."""

    account_no: AccountNo
    old_serial: MeterSerial
    final_reading: NonNegativeDecimal2
    new_serial: MeterSerial
    digits: int = Field(ge=4, le=9)
    initial_reading: NonNegativeDecimal2
    replaced_on: date


@registry.register("PaymentReported", version=1, topic=PAYMENTS)
class PaymentReported(EventPayload):
    """A bank reports a payment. `payment_id` is the bank's unique reference: one payment, whatever the event id."""

    payment_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    account_no: AccountNo
    amount: PositiveMoney
    paid_on: date
    bank: ShortText
    service_code: ServiceCode = "electricity"


@registry.register("PaymentCancelled", version=1, topic=PAYMENTS)
class PaymentCancelled(EventPayload):
    """A previously reported payment is cancelled by the bank."""

    payment_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    account_no: AccountNo
    reason: ShortText


@registry.register("GridReadingTaken", version=1, topic=READINGS)
class GridReadingTaken(EventPayload):
    """The grid company read the meter."""

    account_no: AccountNo
    meter_serial: MeterSerial
    reading_date: date
    value: NonNegativeDecimal2


class TierNormRow(EventPayload):
    electric_stove: bool
    living_alone: bool
    tier1_kwh: Annotated[Decimal, Field(gt=0)]
    tier2_kwh: Annotated[Decimal, Field(gt=0)]

    @field_validator("tier2_kwh")
    @classmethod
    def _tier2_above_tier1(cls, value: Decimal, info: object) -> Decimal:
        data = getattr(info, "data", {})
        if "tier1_kwh" in data and value <= data["tier1_kwh"]:
            raise ValueError("tier 2 norm must be above tier 1")
        return value


@registry.register("TariffPublished", version=1, topic=TARIFFS)
class TariffPublished(EventPayload):
    """A tariff row (net KZT/kWh) in force from a date, with the tier norms (RATING.md §2, §3)."""

    effective_from: date
    flat: Rate
    tier1: Rate
    tier2: Rate
    tier3: Rate
    norms: list[TierNormRow] = Field(min_length=4, max_length=4)


@registry.register("VatRateChanged", version=1, topic=TARIFFS)
class VatRateChanged(EventPayload):
    """The VAT rate from a date, e.g. "0.16"."""

    effective_from: date
    rate: Annotated[Decimal, Field(ge=0, lt=1, max_digits=5, decimal_places=4)]


@registry.register("PeriodClosed", version=1, topic=BILLING)
class PeriodClosed(EventPayload):
    """Run the monthly billing for a period."""

    period: PeriodStr


@registry.register("CorrectionIssued", version=1, topic=BILLING)
class CorrectionIssued(EventPayload):
    """A correction of a period's charges; the amount may be negative."""

    correction_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    account_no: AccountNo
    service_code: ServiceCode
    period: PeriodStr
    amount: Money
    reason: ShortText


@registry.register("DistrictOfficeUpdated", version=1, topic=REFERENCE)
class DistrictOfficeUpdated(EventPayload):
    """A district office (РОЭС) and its contacts."""

    code: Annotated[str, StringConstraints(min_length=1, max_length=20)]
    name: ShortText
    address: ShortText
    phone: ShortText
    hours: ShortText


@registry.register("ServiceRequestProgressed", version=1, topic=REQUESTS)
class ServiceRequestProgressed(EventPayload):
    """The back-office moved a customer request along its lifecycle."""

    request_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    account_no: AccountNo
    status: Literal["in_progress", "resolved", "rejected"]
    comment: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] = ""
