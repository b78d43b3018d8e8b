"""The bill (счёт-квитанция): a frozen snapshot of everything its front and back sides show.

`build_snapshot` turns the facts receipts projected (as they stand when the bill is issued) into plain
JSON data: strings, integers, booleans, lists and objects only, money and kWh as strings with two
decimals. Rendering (HTML, PDF) and the API read only this snapshot, so a bill re-rendered years later
shows exactly what it showed when it was issued, whatever changed since (tariffs, residents, payer,
district office contacts, the reference texts).

Decisions inside PORTAL.md "The bill":
- attributes that change over time (payer, residents, tariff option) are taken as of the period's last day;
- the money block is the electricity service's month (the ledger's rules, `balances.py`); the amount to
  pay is its closing balance, never negative: an overpayment shows as «переплата» and 0.00 to pay;
- «Задолженность по услугам» on the back lists every service's closing balance as of the period;
- the tariff table lists the catalog rows (and VAT rates) in force on any day of the period; the tier
  norms are those in force on its last day;
- the payment QR code carries `payment_qr_payload()` (see there).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

import orjson

from contracts.money import ZERO, format_money, to_tiyn
from receipts.domain import periods
from receipts.domain.balances import PeriodFigures, figures_for

SNAPSHOT_SCHEMA = 1
MAIN_SERVICE = "electricity"
SERVICE_NAMES = {"electricity": "Электроэнергия"}
TARIFF_OPTION_LABELS = {"flat": "единый тариф", "tiered": "дифференцированный тариф"}
TIER_LABELS = {"1": "I ступень", "2": "II ступень", "3": "III ступень", "flat": "единый тариф"}
NORM_LABELS = {
    (False, False): "без электроплиты",
    (True, False): "с электроплитой",
    (False, True): "одиноко проживающие пенсионеры и инвалиды, без электроплиты",
    (True, True): "одиноко проживающие пенсионеры и инвалиды, с электроплитой",
}
ATTRIBUTES = ("payer_name", "residents", "tariff_option")


@dataclass(frozen=True, slots=True)
class AttributeChange:
    effective_from: date
    version: int
    value: str


@dataclass(frozen=True, slots=True)
class AccountFacts:
    account_no: str
    address: str
    electric_stove: bool
    living_alone: bool
    district_office_code: str
    opened_on: date
    attributes: Mapping[str, Sequence[AttributeChange]]


@dataclass(frozen=True, slots=True)
class MeterFacts:
    serial: str
    digits: int
    installed_on: date
    removed_on: date | None


@dataclass(frozen=True, slots=True)
class ReadingFacts:
    reading_date: date
    meter_serial: str
    source: str


@dataclass(frozen=True, slots=True)
class PaymentFacts:
    payment_id: str
    paid_on: date | None
    amount: Decimal
    bank: str


@dataclass(frozen=True, slots=True)
class CorrectionFacts:
    correction_id: str
    amount: Decimal
    reason: str


@dataclass(frozen=True, slots=True)
class TariffRowFacts:
    effective_from: date
    flat: Decimal
    tier1: Decimal
    tier2: Decimal
    tier3: Decimal
    norms: Sequence[Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class VatFacts:
    effective_from: date
    rate: Decimal


@dataclass(frozen=True, slots=True)
class OfficeFacts:
    code: str
    name: str
    address: str
    phone: str
    hours: str


@dataclass(frozen=True, slots=True)
class BillFacts:
    """Everything a bill is built from, read from receipts' projections in one transaction."""

    receipt_id: uuid.UUID
    issued_at: datetime
    period: str
    account: AccountFacts
    charges: Sequence[Mapping[str, Any]]  # ChargeCalculated payloads (JSON form), in the bill's order
    figures: Mapping[str, Sequence[PeriodFigures]]  # per service code, oldest month first
    payments: Sequence[PaymentFacts]  # the main service's payments counted in the period
    corrections: Sequence[CorrectionFacts]  # the main service's corrections of the period
    tariffs: Sequence[TariffRowFacts]
    vat_rates: Sequence[VatFacts]
    meters: Sequence[MeterFacts] = ()
    readings: Sequence[ReadingFacts] = ()
    office: OfficeFacts | None = None
    reference: Mapping[str, Any] = field(default_factory=dict)


_Dated = TypeVar("_Dated", TariffRowFacts, VatFacts)


# --- small pure helpers ------------------------------------------------------------------------------
def value_as_of(history: Sequence[AttributeChange], day: date) -> str | None:
    """The value in force on `day`: the latest change effective by then (the later event wins a tie);
    before the first change, the earliest value."""
    if not history:
        return None
    in_force = [c for c in history if c.effective_from <= day]
    if in_force:
        return max(in_force, key=lambda c: (c.effective_from, c.version)).value
    return min(history, key=lambda c: (c.effective_from, c.version)).value


def rate_text(value: Decimal) -> str:
    """A rate with its significant decimals, at least two: 28.9500 → "28.95", 0.1200 → "0.12"."""
    normalized = value.normalize()
    exponent = normalized.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        normalized = normalized.quantize(Decimal("0.01"))
    return f"{normalized:f}"


def supplier_payee_name(supplier_name: str) -> str:
    """The payee's name as the QR payload carries it: no quotes, no field separator."""
    return " ".join(supplier_name.replace("«", "").replace("»", "").replace("|", " ").split())


def payment_qr_payload(payee: str, account_no: str, amount_due: Decimal, period: str) -> str:
    """The payment QR code's text, in the key=value form of GOST R 56042 ("ST00012" header, `|`-separated):

        ST00012|Name=<payee>|PersonalAcc=<account no>|Sum=<amount in tiyn>|Purpose=Электроэнергия <YYYY-MM>

    `Sum` is an integer number of tiyn (1/100 tenge), so 1234.50 ₸ is `Sum=123450`. A banking app
    that scans it pre-fills the account number and the amount to pay.
    """
    return (
        f"ST00012|Name={payee}|PersonalAcc={account_no}|Sum={to_tiyn(amount_due)}"
        f"|Purpose=Электроэнергия {period}"
    )


def in_force_during(rows: Sequence[_Dated], period: str) -> list[_Dated]:
    """The rows in force on some day of the period: the last one effective by its first day, then every
    row that takes effect inside it; oldest first."""
    first, last = periods.first_day(period), periods.last_day(period)
    ordered = sorted(rows, key=lambda r: r.effective_from)
    before = [r for r in ordered if r.effective_from <= first]
    inside = [r for r in ordered if first < r.effective_from <= last]
    return ([before[-1]] if before else []) + inside


def canonical_json(snapshot: Mapping[str, Any]) -> bytes:
    return orjson.dumps(snapshot, option=orjson.OPT_SORT_KEYS)


def content_hash(snapshot: Mapping[str, Any]) -> str:
    """SHA-256 of the snapshot's canonical JSON (sorted keys, no spaces)."""
    return hashlib.sha256(canonical_json(snapshot)).hexdigest()


def _money(value: Decimal) -> str:
    return format_money(value)


def _point(point: Mapping[str, Any] | None) -> dict[str, str] | None:
    if not point:
        return None
    return {"date": str(point["date"]), "value": format_money(Decimal(str(point["value"])))}


# --- the snapshot -----------------------------------------------------------------------------------
def build_snapshot(facts: BillFacts) -> dict[str, Any]:
    period = facts.period
    last = periods.last_day(period)
    account = facts.account
    attrs = {name: value_as_of(account.attributes.get(name, ()), last) for name in ATTRIBUTES}
    residents = int(attrs["residents"] or 0)
    tariff_option = attrs["tariff_option"] or "flat"

    main_rows = facts.figures.get(MAIN_SERVICE, ())
    money = figures_for(list(main_rows), period)
    amount_due = max(money.closing_balance, ZERO)
    overpayment = max(-money.closing_balance, ZERO)
    due = periods.due_date(period)

    reference = facts.reference
    supplier = dict(reference.get("supplier", {}))
    supplier_name = str(supplier.get("name", "АО «АлматыЭнергоСбыт»"))
    supplier["name"] = supplier_name

    charges = [_charge(c) for c in facts.charges]
    meter = _meter_summary(facts, charges, last)

    tariffs = in_force_during(facts.tariffs, period)
    norms_row = next(
        (
            r
            for r in reversed(sorted(facts.tariffs, key=lambda r: r.effective_from))
            if r.effective_from <= last
        ),
        None,
    )
    norms = _norms(norms_row)
    own_norm = next(
        (
            n
            for n in norms
            if (n["electric_stove"], n["living_alone"]) == (account.electric_stove, account.living_alone)
        ),
        None,
    )
    your_limits = (
        {
            "residents": residents,
            "tier1_kwh": format_money(Decimal(own_norm["tier1_kwh"]) * residents),
            "tier2_kwh": format_money(Decimal(own_norm["tier2_kwh"]) * residents),
        }
        if own_norm is not None and residents > 0
        else None
    )

    debts = []
    for service_code in sorted(facts.figures, key=lambda s: (s != MAIN_SERVICE, s)):
        closing = figures_for(list(facts.figures[service_code]), period).closing_balance
        debts.append(
            {
                "service_code": service_code,
                "service_name": SERVICE_NAMES.get(service_code, service_code),
                "closing_balance": _money(closing),
                "debt": _money(max(closing, ZERO)),
                "overpayment": _money(max(-closing, ZERO)),
            }
        )
    total_debt = sum((Decimal(d["debt"]) for d in debts), ZERO)

    office = facts.office
    return {
        "schema": SNAPSHOT_SCHEMA,
        "receipt_id": str(facts.receipt_id),
        "issued_at": facts.issued_at.isoformat(),
        "account_no": account.account_no,
        "period": period,
        "period_label": periods.label(period),
        "due_date": due.isoformat(),
        "amount_due": _money(amount_due),
        "overpayment": _money(overpayment),
        "front": {
            "supplier": supplier,
            "account": {
                "account_no": account.account_no,
                "payer_name": attrs["payer_name"] or "",
                "address": account.address,
                "residents": residents,
                "tariff_option": tariff_option,
                "tariff_option_label": TARIFF_OPTION_LABELS.get(tariff_option, tariff_option),
                "electric_stove": account.electric_stove,
                "living_alone": account.living_alone,
            },
            "meter": meter,
            "charges": charges,
            "money": {
                "service_code": MAIN_SERVICE,
                "service_name": SERVICE_NAMES[MAIN_SERVICE],
                "opening_balance": _money(money.opening_balance),
                "accrued": _money(money.accrued),
                "corrections": _money(money.corrections),
                "paid": _money(money.paid),
                "closing_balance": _money(money.closing_balance),
                "amount_due": _money(amount_due),
                "overpayment": _money(overpayment),
            },
            "payments": [
                {
                    "payment_id": p.payment_id,
                    "date": p.paid_on.isoformat() if p.paid_on else None,
                    "amount": _money(p.amount),
                    "bank": p.bank,
                }
                for p in facts.payments
            ],
            "corrections": [
                {"correction_id": c.correction_id, "amount": _money(c.amount), "reason": c.reason}
                for c in facts.corrections
            ],
            "qr": {
                "payload": payment_qr_payload(
                    supplier_payee_name(supplier_name), account.account_no, amount_due, period
                )
            },
        },
        "back": {
            "tariffs": [
                {
                    "effective_from": r.effective_from.isoformat(),
                    "flat": rate_text(r.flat),
                    "tier1": rate_text(r.tier1),
                    "tier2": rate_text(r.tier2),
                    "tier3": rate_text(r.tier3),
                }
                for r in tariffs
            ],
            "vat_rates": [
                {"effective_from": v.effective_from.isoformat(), "rate": rate_text(v.rate)}
                for v in in_force_during(facts.vat_rates, period)
            ],
            "norms": norms,
            "your_limits": your_limits,
            "tiers_explained": [str(p) for p in reference.get("tiers_explained", [])],
            "debts": debts,
            "total_debt": _money(total_debt),
            "how_to_pay": [str(p) for p in reference.get("how_to_pay", [])],
            "district_office": (
                {
                    "code": office.code,
                    "name": office.name,
                    "address": office.address,
                    "phone": office.phone,
                    "hours": office.hours,
                }
                if office is not None
                else {
                    "code": account.district_office_code,
                    "name": None,
                    "address": None,
                    "phone": None,
                    "hours": None,
                }
            ),
            "contact_center": dict(reference.get("contact_center", {})),
            "notices": [str(p) for p in reference.get("notices", [])],
        },
    }


def _charge(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "charge_id": str(payload["charge_id"]),
        "period": str(payload["period"]),
        "previous": _point(payload.get("previous")),
        "current": _point(payload.get("current")),
        "days": int(payload.get("days", 0)),
        "consumption_kwh": format_money(Decimal(str(payload["consumption_kwh"]))),
        "tariff_option_applied": str(payload["tariff_option_applied"]),
        "estimated": bool(payload.get("estimated", False)),
        "lines": [
            {
                "from": str(line["from_date"]),
                "to": str(line["to_date"]),
                "tier": str(line["tier"]),
                "tier_label": TIER_LABELS.get(str(line["tier"]), str(line["tier"])),
                "limit_kwh": (
                    format_money(Decimal(str(line["limit_kwh"])))
                    if line.get("limit_kwh") is not None
                    else None
                ),
                "kwh": format_money(Decimal(str(line["kwh"]))),
                "rate": rate_text(Decimal(str(line["rate"]))),
                "amount": format_money(Decimal(str(line["amount"]))),
            }
            for line in payload.get("lines", [])
        ],
        "net_total": format_money(Decimal(str(payload["net_total"]))),
        "vat": format_money(Decimal(str(payload["vat"]))),
        "total": format_money(Decimal(str(payload["total"]))),
    }


def _meter_summary(facts: BillFacts, charges: list[dict[str, Any]], last: date) -> dict[str, Any]:
    """The meter block: the first charge's previous reading, the last one's current reading, their sum."""
    previous = next((c["previous"] for c in charges if c["previous"] is not None), None)
    current = next((c["current"] for c in reversed(charges) if c["current"] is not None), None)
    consumption = sum((Decimal(c["consumption_kwh"]) for c in charges), ZERO)
    serial = None
    if current is not None:
        on_day = date.fromisoformat(current["date"])
        serial = next((r.meter_serial for r in facts.readings if r.reading_date == on_day), None)
    if serial is None:
        day = date.fromisoformat(current["date"]) if current is not None else last
        installed = [
            m for m in facts.meters if m.installed_on <= day and (m.removed_on is None or m.removed_on >= day)
        ]
        if not installed:
            installed = [m for m in facts.meters if m.installed_on <= day]
        if installed:
            serial = max(installed, key=lambda m: m.installed_on).serial
    return {
        "serial": serial,
        "previous": previous,
        "current": current,
        "consumption_kwh": format_money(consumption),
        "estimated": any(c["estimated"] for c in charges),
    }


def _norms(row: TariffRowFacts | None) -> list[dict[str, Any]]:
    if row is None:
        return []
    result = []
    for norm in sorted(row.norms, key=lambda n: (bool(n["living_alone"]), bool(n["electric_stove"]))):
        key = (bool(norm["electric_stove"]), bool(norm["living_alone"]))
        result.append(
            {
                "electric_stove": key[0],
                "living_alone": key[1],
                "label": NORM_LABELS[key],
                "tier1_kwh": rate_text(Decimal(str(norm["tier1_kwh"]))),
                "tier2_kwh": rate_text(Decimal(str(norm["tier2_kwh"]))),
            }
        )
    return result
