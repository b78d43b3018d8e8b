"""Events the accounts service publishes on `accounts.events.v1`.

Streams: `account:{account_no}` (the register: opened, attributes, meters), `account-links:{account_no}`
(which users linked it), `service-request:{request_id}`, `district-office:{code}`.
"""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from contracts.money import Money
from contracts.registry import EventPayload, registry
from contracts.topics import canonical_topic
from contracts.types import AccountNo, NonNegativeDecimal2, ShortText, TariffOption

TOPIC = canonical_topic("accounts")

OfficeCode = Annotated[str, StringConstraints(min_length=1, max_length=20)]
MeterSerial = Annotated[str, StringConstraints(min_length=1, max_length=40)]
RequestCategory = Literal["meter_replacement", "recalculation", "reading_dispute", "connection", "other"]
RequestStatus = Literal["submitted", "in_progress", "resolved", "rejected"]


def account_stream(account_no: str) -> str:
    return f"account:{account_no}"


def account_links_stream(account_no: str) -> str:
    return f"account-links:{account_no}"


def service_request_stream(request_id: str) -> str:
    return f"service-request:{request_id}"


def district_office_stream(code: str) -> str:
    return f"district-office:{code}"


@registry.register("AccountOpened", version=1, topic=TOPIC)
class AccountOpened(EventPayload):
    """A personal account entered the register (from the back-office's AccountOpened)."""

    account_no: AccountNo
    payer_name: ShortText
    address: ShortText
    residents: int = Field(ge=0)
    electric_stove: bool
    living_alone: bool
    tariff_option: TariffOption
    district_office_code: OfficeCode
    opened_on: date
    opening_balance: Money = Decimal("0.00")


@registry.register("MeterInstalled", version=1, topic=TOPIC)
class MeterInstalled(EventPayload):
    """A meter was installed on the account (at opening, or as the new meter of a replacement)."""

    account_no: AccountNo
    serial: MeterSerial
    digits: int = Field(ge=4, le=9)
    installed_on: date
    initial_reading: NonNegativeDecimal2


@registry.register("MeterReplaced", version=1, topic=TOPIC)
class MeterReplaced(EventPayload):
    """The old meter was removed with its final reading; a MeterInstalled for the new one follows."""

    account_no: AccountNo
    old_serial: MeterSerial
    final_reading: NonNegativeDecimal2
    new_serial: MeterSerial
    digits: int = Field(ge=4, le=9)
    initial_reading: NonNegativeDecimal2
    replaced_on: date


@registry.register("ResidentsChanged", version=1, topic=TOPIC)
class ResidentsChanged(EventPayload):
    account_no: AccountNo
    residents: int = Field(ge=0)
    effective_from: date


@registry.register("TariffOptionChanged", version=1, topic=TOPIC)
class TariffOptionChanged(EventPayload):
    account_no: AccountNo
    tariff_option: TariffOption
    effective_from: date


@registry.register("PayerChanged", version=1, topic=TOPIC)
class PayerChanged(EventPayload):
    account_no: AccountNo
    payer_name: ShortText
    effective_from: date


@registry.register("AccountLinked", version=1, topic=TOPIC)
class AccountLinked(EventPayload):
    """A user proved ownership and may now see the account. Several users may link one account."""

    account_no: AccountNo
    user_id: uuid.UUID


@registry.register("AccountUnlinked", version=1, topic=TOPIC)
class AccountUnlinked(EventPayload):
    """The user removed the account from their list; other users' links stay."""

    account_no: AccountNo
    user_id: uuid.UUID


@registry.register("ServiceRequestSubmitted", version=1, topic=TOPIC)
class ServiceRequestSubmitted(EventPayload):
    """A customer request (заявка) to the supplier."""

    request_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    account_no: AccountNo
    user_id: uuid.UUID
    category: RequestCategory
    text: Annotated[str, StringConstraints(min_length=1, max_length=4000)]


@registry.register("ServiceRequestStatusChanged", version=1, topic=TOPIC)
class ServiceRequestStatusChanged(EventPayload):
    request_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    account_no: AccountNo
    status: RequestStatus
    comment: Annotated[str, StringConstraints(max_length=2000)] = ""


@registry.register("DistrictOfficeChanged", version=1, topic=TOPIC)
class DistrictOfficeChanged(EventPayload):
    """A district office (РОЭС) was registered or its contacts changed."""

    code: OfficeCode
    name: ShortText
    address: ShortText
    phone: ShortText
    hours: ShortText
