"""Incoming messages → the ledger's commands (application.commands), and back from the parked table.

Inputs:
- `backoffice.payments.v1`: PaymentReported → ReceivePayment, PaymentCancelled → CancelPayment;
- `backoffice.billing.v1`: CorrectionIssued → PostCorrection (PeriodClosed is the calculator's: ignored);
- `calculator.events.v1`: ChargeCalculated → PostAccrual (amount = the charge's total, with its
  consumption, the tariff text of its lines and the estimated flag), EstimateReversed → PostCorrection;
- `accounts.events.v1`: AccountOpened → OpenAccount.
"""

from __future__ import annotations

from pydantic import BaseModel

from contracts import backoffice as bo
from contracts.envelope import Envelope, IngressEnvelope
from contracts.events import accounts as acc
from contracts.events import calculator as calc
from contracts.registry import EventRegistry
from ledger.application.commands import (
    CancelPayment,
    Command,
    OpenAccount,
    PostAccrual,
    PostCorrection,
    ReceivePayment,
    Source,
)
from ledger.domain.period import parse_period
from ledger.domain.tariffs import RatedLine, tariff_text

ESTIMATE_TRUE_UP = "Перерасчёт по фактическим показаниям"


class Ignored(Exception):
    """A message on an input topic that the ledger has nothing to do with."""


def command_of(payload: BaseModel) -> Command | OpenAccount:
    """The command a validated payload asks for; Ignored for the ones the ledger does not handle."""
    match payload:
        case bo.PaymentReported():
            return ReceivePayment(
                payload.account_no,
                payload.service_code,
                payload.payment_id,
                payload.paid_on,
                payload.amount,
                payload.bank,
            )
        case bo.PaymentCancelled():
            return CancelPayment(payload.account_no, payload.payment_id, payload.reason)
        case bo.CorrectionIssued():
            return PostCorrection(
                payload.account_no,
                payload.service_code,
                payload.correction_id,
                parse_period(payload.period),
                payload.amount,
                payload.reason,
            )
        case calc.ChargeCalculated():
            lines = [RatedLine(line.from_date, line.to_date, line.tier, line.rate) for line in payload.lines]
            return PostAccrual(
                payload.account_no,
                payload.service_code,
                payload.charge_id,
                parse_period(payload.period),
                payload.total,
                tariff_text(lines),
                payload.consumption_kwh,
                payload.estimated,
            )
        case calc.EstimateReversed():
            return PostCorrection(
                payload.account_no,
                payload.service_code,
                payload.correction_id,
                parse_period(payload.period),
                payload.amount,
                # its reason may be empty; a CorrectionPosted's may not
                payload.reason.strip() or ESTIMATE_TRUE_UP,
            )
        case acc.AccountOpened():
            return OpenAccount(payload.account_no, payload.opened_on, payload.opening_balance)
    raise Ignored(type(payload).__name__)


def source_of(
    envelope: IngressEnvelope | Envelope,
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
) -> Source:
    return Source(
        event_id=envelope.event_id,
        event_type=envelope.event_type,
        occurred_at=envelope.occurred_at,
        topic=topic,
        partition=partition,
        offset=offset,
        key=key,
        envelope=envelope,
    )


def parse_stored(
    event_registry: EventRegistry,
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    message: bytes,
    canonical: bool,
) -> tuple[Command | OpenAccount, Source]:
    """A parked message back into its command (it parsed and validated when it was parked)."""
    envelope: IngressEnvelope | Envelope
    if canonical:
        envelope = Envelope.model_validate_json(message)
    else:
        envelope = IngressEnvelope.model_validate_json(message)
    payload = event_registry.parse(topic, envelope.event_type, envelope.schema_version, envelope.payload)
    source = source_of(envelope, topic=topic, partition=partition, offset=offset, key=key)
    return command_of(payload), source


def envelope_bytes(envelope: BaseModel) -> bytes:
    return envelope.model_dump_json().encode()
