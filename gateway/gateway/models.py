"""Bodies and responses of the public API v1 (shared/design/PUBLIC_API.md), with examples for OpenAPI.

Requests are validated here, so a malformed call is answered by the gateway in the caller's language
before any service is bothered. Responses pass the services' bodies through; these models document
them (extra fields the services add are kept).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)
from pydantic_core import PydanticCustomError

AccountNo = Annotated[str, StringConstraints(pattern=r"^[0-9]{10,12}$"), Field(examples=["100200300401"])]
Period = Annotated[
    str, StringConstraints(pattern=r"^(19|20|21)[0-9]{2}-(0[1-9]|1[0-2])$"), Field(examples=["2025-03"])
]
MoneyStr = Annotated[str, Field(pattern=r"^-?\d+\.\d{2}$", examples=["1234.50"])]
MoneyIn = Annotated[
    Decimal,
    Field(gt=0, max_digits=14, decimal_places=2, examples=["4250.00"], description="tenge, two decimals"),
]
ReadingValue = Annotated[
    Decimal,
    Field(ge=0, max_digits=14, decimal_places=2, examples=["12345.60"], description="kWh, two decimals"),
]
FIRST_DAY, LAST_DAY = dt.date(1900, 1, 1), dt.date(2199, 12, 31)


def _iso_date_only(value: Any) -> Any:
    """`YYYY-MM-DD` and nothing else: pydantic would also take a Unix time (`0`, `1735689600`) or a
    datetime at midnight for a date."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        raise PydanticCustomError("date_parsing", "a date YYYY-MM-DD is expected")
    return value


def _sane_date(value: dt.date) -> dt.date:
    """Dates of this domain (readings, quotes) lie between 1900 and 2199 (as the ledger's queries)."""
    if not FIRST_DAY <= value <= LAST_DAY:
        raise PydanticCustomError("date_out_of_range", "the date must be between 1900-01-01 and 2199-12-31")
    return value


IsoDate = Annotated[dt.date, BeforeValidator(_iso_date_only)]
Day = Annotated[IsoDate, AfterValidator(_sane_date), Field(examples=["2025-03-31"])]
Email = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=254)]
Secret = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
Language = Literal["ru", "kk", "en"]


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        """NUL and other C0 controls are never valid in a text field (PostgreSQL rejects NUL outright)."""
        if isinstance(value, str):
            if any(ord(ch) < 32 and ch not in "\t\n\r" for ch in value):
                raise PydanticCustomError("control_characters", "control characters are not allowed")
            if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
                # A lone surrogate (from a JSON escape) is no character: it can't be encoded or stored.
                raise PydanticCustomError("string_unicode", "not a valid Unicode string")
        return value


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


# --- problems -----------------------------------------------------------------------------------------
class FieldError(BaseModel):
    field: str = Field(examples=["last_payment_amount"])
    message: str = Field(examples=["Обязательное поле"])
    code: str | None = Field(None, examples=["missing"])


class Problem(BaseModel):
    """RFC 9457 problem details; texts in the language of `Accept-Language` (ru, kk, en)."""

    type: str = Field(examples=["urn:lk:problem:account_not_found"])
    title: str = Field(examples=["Лицевой счёт не найден"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["Лицевой счёт не найден среди ваших счетов."])
    code: str = Field(examples=["account_not_found"], description="stable machine code")
    errors: list[FieldError] = Field(default_factory=list)


# --- identity -----------------------------------------------------------------------------------------
class RegisterIn(_In):
    email: Email = Field(examples=["aigerim.nurlanovna@mail.kz"])
    password: Secret = Field(examples=["Жаңа-құпиясөз-2025"])
    full_name: Annotated[str, StringConstraints(min_length=1, max_length=300)] = Field(
        examples=["Нұрланқызы Әйгерім Серікқызы"]
    )


class RegisterOut(_Out):
    user_id: str = Field(examples=["0b6f3c4e-2a0d-4d5e-9a57-3f1e8c2b7d10"])


class LoginIn(_In):
    email: Email = Field(examples=["aigerim.nurlanovna@mail.kz"])
    password: Secret = Field(examples=["Жаңа-құпиясөз-2025"])


class TokenOut(_Out):
    access_token: str = Field(examples=["eyJhbGciOiJFZERTQSIsImtpZCI6Ii4uLiJ9.eyJzdWIiOiIuLi4ifQ.c2ln"])
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (a token type, not a secret)
    expires_in: int = Field(examples=[300])
    refresh_token: str = Field(examples=["rt_2f6c0b8e4c1a4f0e9d7b5a3c1e2f4a6b"])


class RefreshIn(_In):
    refresh_token: Secret = Field(examples=["rt_2f6c0b8e4c1a4f0e9d7b5a3c1e2f4a6b"])


class LogoutIn(_In):
    refresh_token: Secret | None = Field(None, examples=["rt_2f6c0b8e4c1a4f0e9d7b5a3c1e2f4a6b"])


class PasswordResetIn(_In):
    email: Email = Field(examples=["aigerim.nurlanovna@mail.kz"])


class PasswordResetConfirmIn(_In):
    token: Secret = Field(examples=["q8V1mRrS0x9b2vT6cW3yZ5aN7dK4fH1j"])
    new_password: Secret = Field(examples=["Новый-пароль-2025"])


class MessageOut(_Out):
    message: str = Field(examples=["Пароль изменён. Войдите с новым паролем"])


class Profile(_Out):
    user_id: str = Field(examples=["0b6f3c4e-2a0d-4d5e-9a57-3f1e8c2b7d10"])
    email: str = Field(examples=["aigerim.nurlanovna@mail.kz"])
    email_verified: bool = Field(examples=[True])
    full_name: str = Field(examples=["Нұрланқызы Әйгерім Серікқызы"])
    language: Language | None = Field(None, examples=["ru"])


class ProfileMessage(Profile):
    message: str = Field(examples=["Изменения сохранены"])


class ProfilePatchIn(_In):
    full_name: Annotated[str, StringConstraints(min_length=1, max_length=300)] | None = Field(
        None, examples=["Иванов Иван Иванович"]
    )
    language: Language | None = Field(None, examples=["kk"])


class PasswordChangeIn(_In):
    current_password: Secret = Field(examples=["Старый-пароль-2024"])
    new_password: Secret = Field(examples=["Новый-пароль-2025"])
    new_password_confirm: Secret = Field(examples=["Новый-пароль-2025"])


class EmailChangeIn(_In):
    new_email: Email = Field(examples=["new.address@mail.kz"])
    current_password: Secret = Field(examples=["Новый-пароль-2025"])


class EmailConfirmIn(_In):
    token: Secret = Field(examples=["Zk3xP0qL8mN2vB6cX1sD9fG4hJ7kL5aQ"])


# --- accounts -----------------------------------------------------------------------------------------
class AccountSummary(_Out):
    account_no: str = Field(examples=["100200300401"])
    payer_name: str | None = Field(examples=["Иванов Иван Иванович"])
    address: str | None = Field(examples=["г. Алматы, ул. Абая, 10, кв. 5"])
    balance: MoneyStr | None = Field(
        description="positive: owed; negative: overpaid; null while the ledger is unavailable",
        examples=["1520.40"],
    )


class LinkIn(_In):
    account_no: AccountNo
    last_payment_month: Period = Field(description="month and year of the last payment, YYYY-MM")
    last_payment_amount: MoneyIn


class LinkOut(_Out):
    account_no: str = Field(examples=["100200300401"])
    message: str = Field(examples=["Успешно добавлено"])


class Meter(_Out):
    serial: str | None = Field(examples=["CE102-0045871"])
    digits: int | None = Field(examples=[6])
    installed_on: str | None = Field(examples=["2019-04-12"])
    replaced_on: str | None = Field(examples=["2023-08-01"])


class DistrictOffice(BaseModel):
    code: str = Field(examples=["02"])
    name: str = Field(examples=["Алмалинский РОЭС"])
    address: str = Field(examples=["г. Алматы, ул. Толе би, 101"])
    phone: str = Field(examples=["+7 727 356 99 99"])
    hours: str = Field(examples=["Пн–Пт 09:00–18:00"])


class AccountOffice(_Out):
    code: str = Field(examples=["02"])
    name: str | None = Field(examples=["Алмалинский РОЭС"])
    address: str | None = Field(examples=["г. Алматы, ул. Толе би, 101"])
    phone: str | None = Field(examples=["+7 727 356 99 99"])
    hours: str | None = Field(examples=["Пн–Пт 09:00–18:00"])


class AccountDetails(_Out):
    account_no: str = Field(examples=["100200300401"])
    payer_name: str = Field(examples=["Иванов Иван Иванович"])
    address: str = Field(examples=["г. Алматы, ул. Абая, 10, кв. 5"])
    residents: int = Field(examples=[3])
    tariff_option: Literal["flat", "tiered"] = Field(examples=["tiered"])
    electric_stove: bool = Field(examples=[False])
    living_alone: bool = Field(examples=[False])
    meter: Meter
    district_office: AccountOffice


RequestCategory = Literal["meter_replacement", "recalculation", "reading_dispute", "connection", "other"]


class ServiceRequestIn(_In):
    category: RequestCategory = Field(examples=["recalculation"])
    text: Annotated[str, StringConstraints(min_length=1, max_length=4000)] = Field(
        examples=["Прошу сделать перерасчёт за март: показание передано неверно."]
    )


class ServiceRequestCreated(_Out):
    request_id: str = Field(examples=["a1b2c3d4e5f60718293a4b5c6d7e8f90"])
    status: str = Field(examples=["submitted"])


class ServiceRequest(_Out):
    request_id: str = Field(examples=["a1b2c3d4e5f60718293a4b5c6d7e8f90"])
    category: str = Field(examples=["recalculation"])
    text: str = Field(examples=["Прошу сделать перерасчёт за март."])
    status: str = Field(examples=["in_progress"])
    comment: str = Field("", examples=["Передано в абонентский отдел"])
    submitted_at: str | None = Field(None, examples=["2025-04-02T10:15:00+05:00"])
    updated_at: str | None = Field(None, examples=["2025-04-03T09:00:00+05:00"])


# --- ledger -------------------------------------------------------------------------------------------
class PeriodBalance(_Out):
    period: str = Field(examples=["2025-03"])
    opening_balance: MoneyStr = Field(examples=["1200.00"])
    accrued: MoneyStr = Field(examples=["5320.40"])
    corrections: MoneyStr = Field(examples=["0.00"])
    paid: MoneyStr = Field(examples=["5000.00"])
    closing_balance: MoneyStr = Field(examples=["1520.40"])


class ServiceBalances(_Out):
    service_code: str = Field(examples=["electricity"])
    service_name: str = Field(examples=["Электроэнергия"])
    supplier: str = Field(examples=["АО «АлматыЭнергоСбыт»"])
    periods: list[PeriodBalance]


class StatementRow(PeriodBalance):
    tariff: str | None = Field(examples=["дифференцированный: 28.95 / 38.22 / 47.77 тг/кВт·ч"])


class Statement(_Out):
    service_name: str = Field(examples=["Электроэнергия"])
    supplier: str = Field(examples=["АО «АлматыЭнергоСбыт»"])
    rows: list[StatementRow]
    account_no: str | None = Field(None, examples=["100200300401"])
    service_code: str | None = Field(None, examples=["electricity"])
    from_: str | None = Field(None, alias="from", examples=["2025-01"])
    to: str | None = Field(None, examples=["2025-12"])
    opening_balance: MoneyStr | None = Field(None, examples=["0.00"])
    closing_balance: MoneyStr | None = Field(None, examples=["1520.40"])


class Payment(_Out):
    payment_id: str = Field(examples=["KASPI-20250314-000123"])
    date: str = Field(examples=["2025-03-14"])
    amount: MoneyStr = Field(examples=["5000.00"])
    bank: str = Field(examples=["Kaspi Bank"])


class ServiceBalance(_Out):
    service_code: str = Field(examples=["electricity"])
    balance: MoneyStr = Field(examples=["1520.40"])


class Balance(_Out):
    account_no: str = Field(examples=["100200300401"])
    balance: MoneyStr = Field(examples=["1520.40"], description="positive: owed; negative: overpaid")
    services: list[ServiceBalance] = Field(default_factory=list)


# --- calculator ---------------------------------------------------------------------------------------
class Reading(_Out):
    reading_date: str = Field(examples=["2025-03-31"])
    value: str = Field(examples=["12345.60"])
    source: str = Field(examples=["customer"])
    consumption: str | None = Field(examples=["230.40"])


class ReadingIn(_In):
    reading_date: Day
    value: ReadingValue
    confirm_implausible: bool = Field(False, description="submit anyway after the 'implausible' warning")


class ReadingAccepted(_Out):
    reading_date: str = Field(examples=["2025-03-31"])
    value: str = Field(examples=["12345.60"])
    consumption: str | None = Field(None, examples=["230.40"])
    message: str | None = Field(None, examples=["Показание принято"])


class CalculationIn(_In):
    reading_date: Day
    reading_value: ReadingValue


class Point(_In):
    date: Day
    value: ReadingValue


class QuoteIn(_In):
    tariff_option: Literal["flat", "tiered"] = Field(examples=["tiered"])
    residents: int = Field(ge=0, le=100, examples=[2])
    electric_stove: bool = Field(False, examples=[False])
    living_alone: bool = Field(False, examples=[False])
    meter_digits: int = Field(6, ge=4, le=9, examples=[6])
    previous: Point
    current: Point


class RatingPoint(_Out):
    date: str = Field(examples=["2025-02-28"])
    value: str = Field(examples=["12115.20"])


class RatingLine(_Out):
    from_: str = Field(alias="from", examples=["2025-02-28"])
    to: str = Field(examples=["2025-03-31"])
    tier: str = Field(examples=["1"])
    limit_kwh: str | None = Field(examples=["183.93"])
    kwh: str = Field(examples=["183.93"])
    rate: str = Field(examples=["28.95"])
    amount: MoneyStr = Field(examples=["5324.77"])


class RatingResult(_Out):
    previous: RatingPoint
    current: RatingPoint
    days: int = Field(examples=[31])
    consumption_kwh: str = Field(examples=["230.40"])
    tariff_option_applied: str = Field(examples=["tiered"])
    lines: list[RatingLine]
    net_total: MoneyStr = Field(examples=["7100.93"])
    vat: MoneyStr = Field(examples=["852.11"])
    total: MoneyStr = Field(examples=["7953.04"])


class TariffRow(_Out):
    effective_from: str = Field(examples=["2025-07-01"])
    effective_to: str | None = Field(None, examples=[None])
    flat: str = Field(examples=["31.85"])
    tier1: str = Field(examples=["28.95"])
    tier2: str = Field(examples=["38.22"])
    tier3: str = Field(examples=["47.77"])
    norms: list[dict[str, Any]] = Field(
        default_factory=list,
        examples=[[{"electric_stove": False, "living_alone": False, "tier1_kwh": "90", "tier2_kwh": "160"}]],
    )


class VatRate(_Out):
    effective_from: str = Field(examples=["2026-01-01"])
    effective_to: str | None = Field(None, examples=[None])
    rate: str = Field(examples=["0.16"])


class Tariffs(_Out):
    """The tariff catalog and VAT rates with their effective dates (net rates, KZT per kWh)."""

    currency: str = Field("KZT", examples=["KZT"])
    unit: str = Field("kWh", examples=["kWh"])
    vat_included: bool = Field(False, examples=[False])
    tariffs: list[TariffRow]
    vat_rates: list[VatRate]


class ComparisonInterval(_Out):
    from_: str = Field(alias="from", examples=["2025-02-28"])
    to: str = Field(examples=["2025-03-31"])
    consumption_kwh: str = Field(examples=["230.40"])
    flat_total: MoneyStr = Field(examples=["8510.93"])
    tiered_total: MoneyStr = Field(examples=["7953.04"])


class TariffComparison(_Out):
    """What the account's own consumption (its readings of the last months) cost on the flat and on the
    tiered tariff."""

    account_no: str = Field(examples=["100200300401"])
    months: int = Field(examples=[12])
    from_: str | None = Field(None, alias="from", examples=["2024-03-31"])
    to: str | None = Field(None, examples=["2025-03-31"])
    consumption_kwh: str = Field(examples=["2764.80"])
    current_option: str | None = Field(None, examples=["tiered"])
    tiered_available: bool = Field(examples=[True])
    flat_total: MoneyStr = Field(examples=["102131.16"])
    tiered_total: MoneyStr = Field(examples=["95436.48"])
    cheaper: Literal["flat", "tiered", "same"] | None = Field(None, examples=["tiered"])
    savings: MoneyStr = Field(examples=["6694.68"])
    intervals: list[ComparisonInterval] = Field(default_factory=list)


class ConsumptionMonth(_Out):
    period: str = Field(examples=["2025-03"])
    consumption_kwh: str = Field(examples=["230.40"])
    estimated_kwh: str | None = Field(None, examples=["0.00"])
    estimated: bool = Field(False, examples=[False])


# --- receipts -----------------------------------------------------------------------------------------
class ReceiptSummary(_Out):
    period: str = Field(examples=["2025-03"])
    amount_due: MoneyStr = Field(examples=["7953.04"])
    due_date: str = Field(examples=["2025-04-25"])
    issued_at: str | None = Field(None, examples=["2025-04-01T03:00:00+05:00"])


class Receipt(_Out):
    """The bill's data as issued (a frozen snapshot): the front (supplier, account, meter, tier lines,
    money, payments, QR payload) and the back (tariffs, norms, debts, where to pay, district office,
    notices)."""

    account_no: str = Field(examples=["100200300401"])
    period: str = Field(examples=["2025-03"])
    amount_due: MoneyStr = Field(examples=["5042.36"])
    overpayment: MoneyStr = Field(examples=["0.00"])
    due_date: str = Field(examples=["2025-04-25"])
    issued_at: str | None = Field(None, examples=["2025-04-01T03:00:00+05:00"])
    front: dict[str, Any] = Field(
        examples=[
            {
                "account": {
                    "account_no": "100200300401",
                    "payer_name": "Иванов Иван Иванович",
                    "residents": 2,
                },
                "meter": {"serial": "CE102-0045871", "consumption_kwh": "230.40"},
                "money": {"opening_balance": "1200.00", "accrued": "7953.04", "paid": "4110.68"},
                "qr": {"payload": "ST00012|Name=АО АлматыЭнергоСбыт|PersonalAcc=100200300401|Sum=504236"},
            }
        ]
    )
    back: dict[str, Any] = Field(
        examples=[
            {
                "tariffs": [{"effective_from": "2025-07-01", "flat": "31.85", "tier1": "28.95"}],
                "debts": [{"service_code": "electricity", "debt": "5042.36"}],
                "notices": ["Показания принимаются с 20 по 25 число."],
            }
        ]
    )


class EBillIn(_In):
    email: Email = Field(examples=["aigerim.nurlanovna@mail.kz"])
    language: Language | None = Field(None, examples=["kk"], description="language of the e-mail text")


class EBill(_Out):
    account_no: str | None = Field(None, examples=["100200300401"])
    email: str = Field(examples=["aigerim.nurlanovna@mail.kz"])
    language: str | None = Field(None, examples=["ru"])
    subscribed: bool = Field(True, examples=[True])
    subscribed_at: str | None = Field(None, examples=["2025-04-02T10:15:00+05:00"])


# --- reference ----------------------------------------------------------------------------------------
class ContactCenterOut(BaseModel):
    phone: str = Field(examples=["+7 (727) 356-99-99"])
    email: str = Field(examples=["call-center@esb.kz"])
    hours: str = Field(examples=["ежедневно с 8:00 до 20:00"])
    address: str = Field(examples=["г. Алматы, ул. Толе би, 69"])


def dump(model: BaseModel) -> dict[str, Any]:
    """A request body as the services take it (money and kWh as two-decimal strings, dates ISO)."""
    data: dict[str, Any] = model.model_dump(mode="json", exclude_none=True)
    for name in list(data):
        raw = getattr(model, name, None)
        if isinstance(raw, Decimal):
            data[name] = f"{raw:.2f}"
        elif isinstance(raw, BaseModel):
            data[name] = dump(raw)
    return data
