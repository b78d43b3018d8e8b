"""The simulator's ledger: what it sent, folded from the messages themselves.

It is built the way the system is meant to read the stream (BACKOFFICE_EVENTS.md): the same `event_id`
twice is one event, the same `payment_id` is one payment whatever its event id, a cancellation applies
whenever it comes (before or after its payment), and a message that does not validate against the
contracts counts as malformed and changes nothing. So the fold does not depend on delivery order, and
tests compare its totals with what the system's API shows.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from backoffice_simulator.wire import OutMessage
from contracts import backoffice as bo
from contracts.envelope import IngressEnvelope
from contracts.money import ZERO, format_money
from contracts.registry import UnknownEventType, UnsupportedSchemaVersion, registry


@dataclass
class PaymentEntry:
    payment_id: str
    paid_on: date
    amount: Decimal
    bank: str
    service_code: str
    order: int  # first arrival, the tie-break of "last payment" after paid_on


@dataclass
class AccountEntry:
    account_no: str
    payer_name: str = ""
    address: str = ""
    district_office_code: str = ""
    opened_on: date | None = None
    opening_balance: Decimal = ZERO
    residents: int = 0
    tariff_option: str = "flat"
    meter_serial: str = ""
    payments: dict[str, PaymentEntry] = field(default_factory=dict)
    corrections: dict[str, tuple[str, Decimal, str]] = field(
        default_factory=dict
    )  # id → period, amount, reason
    readings: dict[str, tuple[date, Decimal]] = field(default_factory=dict)  # event id → date, value
    meter_replacements: int = 0

    def live_payments(self, cancelled: set[str]) -> list[PaymentEntry]:
        return sorted(
            (p for p in self.payments.values() if p.payment_id not in cancelled),
            key=lambda p: (p.paid_on, p.order),
        )


def is_valid(topic: str, raw: bytes) -> bool:
    """True when the record is a back-office message the contracts accept (what a consumer would apply)."""
    return parse(topic, raw) is not None


def parse(topic: str, raw: bytes) -> tuple[str, str, Any] | None:
    """(event_id, event_type, payload model), or None for a malformed record."""
    try:
        document = json.loads(raw)
        envelope = bo_envelope(document)
        payload = registry.parse(
            topic, envelope["event_type"], envelope["schema_version"], envelope["payload"]
        )
    except (ValueError, ValidationError, UnknownEventType, UnsupportedSchemaVersion, TypeError, KeyError):
        return None
    return envelope["event_id"], envelope["event_type"], payload


def bo_envelope(document: Any) -> dict[str, Any]:
    env = IngressEnvelope.model_validate(document)
    return {
        "event_id": str(env.event_id),
        "event_type": env.event_type,
        "schema_version": env.schema_version,
        "payload": env.payload,
    }


class SimLedger:
    """Per account: opening balance, payments (and which were cancelled), corrections, readings."""

    def __init__(self) -> None:
        self.accounts: dict[str, AccountEntry] = {}
        self.cancelled: dict[str, set[str]] = defaultdict(set)  # account → payment ids
        self.seen_events: set[str] = set()
        self.periods_closed: set[str] = set()
        self.district_offices: dict[str, str] = {}
        self.tariffs: set[str] = set()
        self.sent: Counter[tuple[str, str]] = Counter()  # (topic, event type) of every valid record sent
        self.duplicates: Counter[str] = Counter()  # per topic: records whose event id was already seen
        self.malformed: Counter[str] = Counter()  # per topic
        self.records = 0
        self._order = 0

    def account(self, account_no: str) -> AccountEntry:
        entry = self.accounts.get(account_no)
        if entry is None:
            entry = self.accounts[account_no] = AccountEntry(account_no)
        return entry

    def record_all(self, messages: list[OutMessage]) -> SimLedger:
        for msg in messages:
            self.record(msg)
        return self

    def record(self, msg: OutMessage) -> None:
        self.records += 1
        parsed = parse(msg.topic, msg.value)
        if parsed is None:
            self.malformed[msg.topic] += 1
            return
        ev_id, event_type, payload = parsed
        if ev_id in self.seen_events:
            self.duplicates[msg.topic] += 1
            return
        self.seen_events.add(ev_id)
        self.sent[(msg.topic, event_type)] += 1
        self._apply(ev_id, payload)

    def _apply(self, ev_id: str, p: Any) -> None:
        self._order += 1
        match p:
            case bo.AccountOpened():
                a = self.account(p.account_no)
                a.payer_name, a.address = p.payer_name, p.address
                a.district_office_code, a.opened_on = p.district_office_code, p.opened_on
                a.opening_balance, a.residents, a.tariff_option = (
                    p.opening_balance,
                    p.residents,
                    p.tariff_option,
                )
                a.meter_serial = p.meter.serial
            case bo.PaymentReported():
                a = self.account(p.account_no)
                if p.payment_id not in a.payments:  # the same payment, whatever its event id
                    a.payments[p.payment_id] = PaymentEntry(
                        p.payment_id, p.paid_on, p.amount, p.bank, p.service_code, self._order
                    )
            case bo.PaymentCancelled():
                self.cancelled[p.account_no].add(p.payment_id)
            case bo.CorrectionIssued():
                self.account(p.account_no).corrections.setdefault(
                    p.correction_id, (p.period, p.amount, p.reason)
                )
            case bo.GridReadingTaken():
                self.account(p.account_no).readings[ev_id] = (p.reading_date, p.value)
            case bo.MeterReplaced():
                a = self.account(p.account_no)
                a.meter_replacements += 1
                a.meter_serial = p.new_serial
            case bo.ResidentsChanged():
                self.account(p.account_no).residents = p.residents
            case bo.TariffOptionChanged():
                self.account(p.account_no).tariff_option = p.tariff_option
            case bo.PayerChanged():
                self.account(p.account_no).payer_name = p.payer_name
            case bo.PeriodClosed():
                self.periods_closed.add(p.period)
            case bo.DistrictOfficeUpdated():
                self.district_offices[p.code] = p.name
            case bo.TariffPublished():
                self.tariffs.add(f"tariff:{p.effective_from}")
            case bo.VatRateChanged():
                self.tariffs.add(f"vat:{p.effective_from}")
            case _:
                pass

    # --- totals -------------------------------------------------------------------------------------
    def paid(self, account_no: str) -> Decimal:
        a = self.accounts[account_no]
        return sum((p.amount for p in a.live_payments(self.cancelled[account_no])), ZERO)

    def paid_by_month(self, account_no: str) -> dict[str, Decimal]:
        a = self.accounts[account_no]
        months: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for p in a.live_payments(self.cancelled[account_no]):
            months[p.paid_on.strftime("%Y-%m")] += p.amount
        return dict(sorted(months.items()))

    def corrections_by_period(self, account_no: str) -> dict[str, Decimal]:
        periods: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for period, amount, _ in self.accounts[account_no].corrections.values():
            periods[period] += amount
        return dict(sorted(periods.items()))

    def last_payment(self, account_no: str) -> PaymentEntry | None:
        """The proof of ownership (PUBLIC_API.md POST /accounts): the latest payment not cancelled."""
        live = self.accounts[account_no].live_payments(self.cancelled[account_no])
        return live[-1] if live else None

    def proof(self, account_no: str) -> dict[str, str] | None:
        last = self.last_payment(account_no)
        if last is None:
            return None
        return {
            "account_no": account_no,
            "last_payment_month": last.paid_on.strftime("%Y-%m"),
            "last_payment_amount": format_money(last.amount),
        }

    def to_json(self) -> dict[str, Any]:
        accounts: dict[str, Any] = {}
        for no, a in sorted(self.accounts.items()):
            cancelled = self.cancelled[no]
            live = a.live_payments(cancelled)
            corrections = sum((amount for _, amount, _ in a.corrections.values()), ZERO)
            accounts[no] = {
                "account_no": no,
                "opened": a.opened_on is not None,
                "payer_name": a.payer_name,
                "address": a.address,
                "district_office_code": a.district_office_code,
                "opened_on": a.opened_on.isoformat() if a.opened_on else None,
                "residents": a.residents,
                "tariff_option": a.tariff_option,
                "meter_serial": a.meter_serial,
                "opening_balance": format_money(a.opening_balance),
                "payments": [
                    {
                        "payment_id": p.payment_id,
                        "paid_on": p.paid_on.isoformat(),
                        "amount": format_money(p.amount),
                        "bank": p.bank,
                        "service_code": p.service_code,
                        "cancelled": p.payment_id in cancelled,
                    }
                    for p in sorted(a.payments.values(), key=lambda p: (p.paid_on, p.order))
                ],
                "corrections": [
                    {"correction_id": cid, "period": period, "amount": format_money(amount), "reason": reason}
                    for cid, (period, amount, reason) in sorted(a.corrections.items())
                ],
                "readings": len(a.readings),
                "meter_replacements": a.meter_replacements,
                "totals": {
                    "paid": format_money(sum((p.amount for p in live), ZERO)),
                    "payments": len(live),
                    "cancelled": len([p for p in a.payments.values() if p.payment_id in cancelled]),
                    "corrections": format_money(corrections),
                    "paid_by_month": {m: format_money(v) for m, v in self.paid_by_month(no).items()},
                    "corrections_by_period": {
                        m: format_money(v) for m, v in self.corrections_by_period(no).items()
                    },
                },
                "proof": self.proof(no),
            }
        return {
            "accounts": accounts,
            "periods_closed": sorted(self.periods_closed),
            "district_offices": dict(sorted(self.district_offices.items())),
            "tariff_rows": sorted(self.tariffs),
            "records": self.records,
            "sent": {f"{t}:{e}": n for (t, e), n in sorted(self.sent.items())},
            "duplicates": dict(sorted(self.duplicates.items())),
            "malformed": dict(sorted(self.malformed.items())),
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
