"""Chaos: duplicates, disorder and malformed messages, at chosen rates, with an exact account of them.

- duplicates: a message is sent again with the same event id (a redelivery); a payment is also re-reported
  by the bank with the same `payment_id` under a new event id. Both must change nothing.
- disorder: a message is held back by up to `window` positions. By default (`scope="cross-topic"`) two
  messages with the same topic and key keep their relative order, as Kafka keeps it for one producer's
  partition; the contract's disorder is across topics (a payment before its account is opened, a
  reading before the meter replacement...). `scope="any"` shuffles those too.
- malformed: beside a valid message, a broken copy with its own event id is sent to the same topic; the
  valid one still goes, so the totals stay those of the valid stream. Every kind is produced in turn,
  and the report counts what was sent per topic and kind: each must land in the topic's DLQ.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from backoffice_simulator.wire import OutMessage, dumps, event_id

MALFORMED_KINDS = (
    "bad_json",
    "missing_field",
    "amount_three_decimals",
    "amount_negative",
    "amount_zero",
    "account_with_letters",
    "unknown_event_type",
    "wrong_schema_version",
    "missing_envelope_field",
)
# Which kinds apply to which message: amounts that must be > 0 (a correction may be negative or zero).
AMOUNT_KINDS = {
    "amount_three_decimals": frozenset({"PaymentReported", "CorrectionIssued"}),
    "amount_negative": frozenset({"PaymentReported"}),
    "amount_zero": frozenset({"PaymentReported"}),
}
# Fields whose absence makes each message invalid (a required one).
REQUIRED = {
    "AccountOpened": "payer_name",
    "ResidentsChanged": "residents",
    "TariffOptionChanged": "tariff_option",
    "PayerChanged": "payer_name",
    "MeterReplaced": "new_serial",
    "PaymentReported": "amount",
    "PaymentCancelled": "payment_id",
    "GridReadingTaken": "value",
    "TariffPublished": "flat",
    "VatRateChanged": "rate",
    "PeriodClosed": "period",
    "CorrectionIssued": "amount",
    "DistrictOfficeUpdated": "name",
    "ServiceRequestProgressed": "status",
}


@dataclass(frozen=True, slots=True)
class ChaosConfig:
    duplicates: float = 0.0
    disorder: float = 0.0
    malformed: float = 0.0
    window: int = 40
    scope: str = "cross-topic"  # or "any"
    seed: int = 0

    @property
    def active(self) -> bool:
        return self.duplicates > 0 or self.disorder > 0 or self.malformed > 0


@dataclass
class ChaosReport:
    duplicates: Counter[str] = field(default_factory=Counter)  # per topic: same event id again
    payment_resends: int = 0  # same payment_id, new event id
    displaced: int = 0
    malformed: dict[str, Counter[str]] = field(default_factory=dict)  # topic → kind → count

    def malformed_per_topic(self) -> dict[str, int]:
        return {topic: sum(kinds.values()) for topic, kinds in sorted(self.malformed.items())}

    def merge(self, other: ChaosReport) -> None:
        self.duplicates.update(other.duplicates)
        self.payment_resends += other.payment_resends
        self.displaced += other.displaced
        for topic, kinds in other.malformed.items():
            self.malformed.setdefault(topic, Counter()).update(kinds)

    def to_json(self) -> dict[str, Any]:
        return {
            "duplicates": dict(sorted(self.duplicates.items())),
            "payment_resends": self.payment_resends,
            "displaced": self.displaced,
            "malformed": {t: dict(sorted(k.items())) for t, k in sorted(self.malformed.items())},
            "malformed_per_topic": self.malformed_per_topic(),
        }


class Chaos:
    """Applies a ChaosConfig to batches of messages; the kinds of malformation rotate across batches."""

    def __init__(self, config: ChaosConfig) -> None:
        self.config = config
        self.report = ChaosReport()
        self._rng = random.Random(f"chaos:{config.seed}")  # noqa: S311
        self._serial = 0

    def apply(self, messages: list[OutMessage]) -> list[OutMessage]:
        c = self.config
        if not c.active:
            return list(messages)
        out: list[OutMessage] = []
        for msg in messages:
            out.append(msg)
            if c.malformed > 0 and self._rng.random() < c.malformed:
                out.append(self._malformed(msg))
            if c.duplicates > 0 and self._rng.random() < c.duplicates:
                out.append(msg.with_kind("duplicate"))
                self.report.duplicates[msg.topic] += 1
            if c.duplicates > 0 and msg.event_type == "PaymentReported" and self._rng.random() < c.duplicates:
                out.append(self._resend(msg))
                self.report.payment_resends += 1
        if c.disorder > 0:
            out = self._disorder(out)
        return out

    # --- disorder -------------------------------------------------------------------------------------
    def _disorder(self, messages: list[OutMessage]) -> list[OutMessage]:
        c = self.config
        positions: list[float] = []
        for i, _ in enumerate(messages):
            delay = self._rng.randint(1, c.window) if self._rng.random() < c.disorder else 0
            positions.append(i + delay + 0.5 * (delay > 0))
        order = sorted(range(len(messages)), key=lambda i: (positions[i], i))
        shuffled = [messages[i] for i in order]
        if c.scope == "cross-topic":
            shuffled = _keep_order_per_key(messages, shuffled)
        self.report.displaced += sum(1 for a, b in zip(messages, shuffled, strict=True) if a is not b)
        return shuffled

    # --- duplicates -----------------------------------------------------------------------------------
    def _resend(self, msg: OutMessage) -> OutMessage:
        """The bank reports the same payment again: same payment_id and payload, a new event id."""
        self._serial += 1
        document = msg.document()
        new_id = event_id(f"resend:{msg.event_id}:{self._serial}:{self.config.seed}")
        document["event_id"] = str(new_id)
        return OutMessage(msg.topic, msg.key, dumps(document), str(new_id), msg.event_type, msg.at, "resend")

    # --- malformed ------------------------------------------------------------------------------------
    def _malformed(self, msg: OutMessage) -> OutMessage:
        self._serial += 1
        kinds = applicable_kinds(msg)
        kind = kinds[self._serial % len(kinds)]
        document = msg.document()
        new_id = str(event_id(f"malformed:{msg.event_id}:{self._serial}:{self.config.seed}"))
        document["event_id"] = new_id
        payload: dict[str, Any] = document["payload"]
        value: bytes
        if kind == "bad_json":
            value = dumps(document)[:-7] + b"}{"
        else:
            if kind == "missing_field":
                payload.pop(REQUIRED.get(msg.event_type, next(iter(payload))), None)
            elif kind == "amount_three_decimals":
                payload["amount"] = _three_decimals(payload["amount"])
            elif kind == "amount_negative":
                payload["amount"] = "-" + payload["amount"]
            elif kind == "amount_zero":
                payload["amount"] = "0.00"
            elif kind == "account_with_letters":
                no = payload["account_no"]
                payload["account_no"] = no[:3] + "AB" + no[5:]
            elif kind == "unknown_event_type":
                document["event_type"] = msg.event_type + "Renamed"
            elif kind == "wrong_schema_version":
                document["schema_version"] = 2
            elif kind == "missing_envelope_field":
                document.pop("occurred_at")
            value = dumps(document)
        topic_kinds = self.report.malformed.setdefault(msg.topic, Counter())
        topic_kinds[kind] += 1
        return OutMessage(msg.topic, msg.key, value, new_id, msg.event_type, msg.at, f"malformed:{kind}")


def malformed_message(topic: str, key: str, kind: str, template: OutMessage) -> OutMessage:
    """One malformed copy of `template` of a given kind (for tests and the DLQ demo)."""
    chaos = Chaos(ChaosConfig(malformed=1.0))
    kinds = applicable_kinds(template)
    chaos._serial = kinds.index(kind) - 1
    msg = chaos._malformed(template)
    return OutMessage(topic, key, msg.value, msg.event_id, msg.event_type, msg.at, msg.kind)


def applicable_kinds(msg: OutMessage) -> list[str]:
    kinds = [k for k in MALFORMED_KINDS if msg.event_type in AMOUNT_KINDS.get(k, (msg.event_type,))]
    if not _has_account(msg):
        kinds.remove("account_with_letters")
    return kinds


def _has_account(msg: OutMessage) -> bool:
    return "account_no" in json.loads(msg.value).get("payload", {})


def _three_decimals(amount: str) -> str:
    whole, _, frac = amount.lstrip("-").partition(".")
    sign = "-" if amount.startswith("-") else ""
    return f"{sign}{whole}.{(frac + '00')[:2]}5"


def _keep_order_per_key(original: list[OutMessage], shuffled: list[OutMessage]) -> list[OutMessage]:
    """Reassign, within each (topic, key), the original order onto the shuffled slots."""
    queues: dict[tuple[str, str], list[OutMessage]] = {}
    for msg in original:
        queues.setdefault((msg.topic, msg.key), []).append(msg)
    cursor: Counter[tuple[str, str]] = Counter()
    result: list[OutMessage] = []
    for msg in shuffled:
        k = (msg.topic, msg.key)
        result.append(queues[k][cursor[k]])
        cursor[k] += 1
    return result
