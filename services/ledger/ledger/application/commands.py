"""The ledger's write side: facts from the back-office and from upstream services → ServiceLedger → events.

Every command is decided by the stream's `ServiceLedger` (loaded from the event store, see
`adapters.streams`) and appended as one event, whose id is the id of the message that caused it.

Ordering rules (BACKOFFICE_EVENTS.md: messages arrive late and out of order across topics):
- a fact for an account the ledger has not seen opened (no AccountOpened yet) is **parked**, whatever
  the service; when the account's AccountOpened arrives, its parked facts are applied in arrival order,
  in the same transaction as the opening balance;
- a cancellation of a payment the ledger does not know (yet) is parked until that payment arrives, and
  applied right after it, in the same transaction;
- parked facts wait indefinitely: nothing expires. `python -m ledger.worker parked` lists them with
  their age, so an operator sees what is waiting and for what.

What is refused (`Rejected`, dead-lettered with the reason):
- a payment whose `payment_id` is already recorded on another account or service (the bank's
  reference identifies one payment);
- a redelivered fact under a known id with other values (a payment with another amount, date or bank;
  a charge or correction with another amount or month): the first fact stays, the conflict is shown;
- a cancellation naming a payment of another account;
- an opening balance that differs from the one already set;
- what the domain refuses (a third decimal, a negative accrual, ...) and amounts out of range: one
  amount of `MAX_AMOUNT` or more, or a fact that would take a month's total or a balance of its stream
  beyond what the read models store (NUMERIC(14,2): `domain.account_ledger.STORED_LIMIT`).

A fact is checked for what it is by itself (its amount, sign, date, ids) before it is parked, with the
same reasons as when it is applied: an invalid message is dead-lettered at once, never parked first and
dead-lettered days later from the parked table.

A negative charge (ChargeCalculated.total < 0; the contract's Money allows it, the calculator never
emits one) is refused: an accrual is what the customer is charged, a credit comes as a correction
(EstimateReversed, CorrectionIssued).

A fact seen again with the same values, under any message id, changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Literal, Protocol
from uuid import UUID

from contracts.events.ledger import ledger_stream
from ledger.domain.account_ledger import ServiceLedger
from ledger.domain.errors import InvalidLedgerEvent, OpeningBalanceConflict, UnknownPayment
from ledger.domain.events import AccrualPosted, CorrectionPosted, LedgerEvent, PaymentReceived
from ledger.domain.period import ALMATY, Period

log = logging.getLogger(__name__)

ELECTRICITY = "electricity"
# One amount: far below the read models' NUMERIC(14,2) limit (sums are checked by the aggregate).
MAX_AMOUNT = Decimal("10000000000")  # 10 billion tenge
# A payment is dated by the bank on the local calendar; a day of slack covers time zones and clocks.
FUTURE_SLACK = timedelta(days=1)


class Rejected(Exception):
    """A fact the ledger refuses for good; the caller dead-letters it with `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    PARKED = "parked"


# --- commands -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamKey:
    account_no: str
    service_code: str
    # Derived once (it is asked for many times per message).
    stream_id: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stream_id", ledger_stream(self.account_no, self.service_code))


@dataclass(frozen=True, slots=True)
class ReceivePayment:
    account_no: str
    service_code: str
    payment_id: str
    paid_on: date
    amount: Decimal
    bank: str


@dataclass(frozen=True, slots=True)
class CancelPayment:
    account_no: str
    payment_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class PostCorrection:
    account_no: str
    service_code: str
    correction_id: str
    period: Period
    amount: Decimal
    reason: str


@dataclass(frozen=True, slots=True)
class PostAccrual:
    account_no: str
    service_code: str
    charge_id: str
    period: Period
    amount: Decimal
    tariff: str | None
    consumption_kwh: Decimal
    estimated: bool


@dataclass(frozen=True, slots=True)
class OpenAccount:
    account_no: str
    opened_on: date
    opening_balance: Decimal


Command = ReceivePayment | CancelPayment | PostCorrection | PostAccrual


@dataclass(frozen=True, slots=True)
class Source:
    """The message a command came from: its id becomes the new event's id; parking keeps the message
    as it arrived, so that it can be applied or dead-lettered unchanged later."""

    event_id: UUID
    event_type: str
    occurred_at: datetime
    topic: str
    partition: int
    offset: int
    key: bytes | None
    envelope: object  # the message's envelope as it was received (the adapter's type)


@dataclass(frozen=True, slots=True)
class Parked:
    id: int
    command: Command
    source: Source


@dataclass
class Loaded:
    key: StreamKey
    ledger: ServiceLedger
    account_open: bool
    # Where the payment id asked for is recorded (None: nowhere yet).
    payment_owner: StreamKey | None = None
    # Cancellations parked until the payment asked for arrives, in arrival order.
    waiting_cancellations: tuple[Parked, ...] = ()


WaitingFor = Literal["account", "payment"]


class LedgerStore(Protocol):
    """The write side's storage (adapters.streams.PgLedgerStore), in the caller's transaction."""

    async def load(self, key: StreamKey, *, payment_id: str | None = None) -> Loaded: ...

    async def append(self, loaded: Loaded, event: LedgerEvent, source: Source) -> None:
        """Append `event` (already applied to `loaded.ledger`) at version `loaded.ledger.version`."""

    async def locate_payment(self, account_no: str, payment_id: str) -> tuple[StreamKey | None, bool]:
        """(the stream that recorded `payment_id` or None, whether `account_no` is open)."""

    async def park(
        self, command: Command, source: Source, waiting_for: WaitingFor, payment_id: str | None = None
    ) -> bool:
        """Park `command`; False (and nothing parked) when it waits for its account, which turns out
        to have opened meanwhile: the caller applies it instead."""

    async def unpark(self, parked: Parked) -> None: ...

    async def take_parked_for_account(self, account_no: str) -> list[Parked]:
        """Remove and return the facts parked until `account_no` opens, in arrival order."""

    async def record_opening(self, command: OpenAccount, source: Source) -> None: ...

    async def dead_letter(self, parked: Parked, reason: str) -> None:
        """A parked fact turned out invalid when applied: send it to its topic's DLQ, drop it."""


# --- the use cases --------------------------------------------------------------------------------


class LedgerCommands:
    def __init__(self, store: LedgerStore) -> None:
        self._store = store

    async def execute(self, command: Command, source: Source) -> Outcome:
        match command:
            case ReceivePayment():
                return await self._receive_payment(command, source)
            case CancelPayment():
                return await self._cancel_payment(command, source)
            case PostCorrection():
                return await self._post_correction(command, source)
            case PostAccrual():
                return await self._post_accrual(command, source)

    async def open_account(self, command: OpenAccount, source: Source) -> Outcome:
        """Record the opening, set the electricity opening balance in the opening month, then apply
        what was parked for the account, in arrival order."""
        _check_amount(command.opening_balance, "opening_balance")
        store = self._store
        # The stream first (its load takes the account's lock, then the stream head's, in the store's
        # lock order), then the opening's record.
        loaded = await store.load(StreamKey(command.account_no, ELECTRICITY))
        await store.record_opening(command, source)
        try:
            events = loaded.ledger.set_opening_balance(
                Period.of_date(command.opened_on), command.opening_balance
            )
        except OpeningBalanceConflict as exc:
            raise Rejected(str(exc)) from exc
        except (InvalidLedgerEvent, ValueError) as exc:
            raise Rejected(f"invalid opening balance: {exc}") from exc
        for event in events:
            await store.append(loaded, event, source)
        for parked in await store.take_parked_for_account(command.account_no):
            await self._apply_parked(parked)
        return Outcome.APPLIED if events else Outcome.DUPLICATE

    # --- payments ---------------------------------------------------------------------------

    async def _receive_payment(self, c: ReceivePayment, source: Source) -> Outcome:
        _check_amount(c.amount, "amount")
        today = datetime.now(ALMATY).date()
        if c.paid_on > today + FUTURE_SLACK:
            raise Rejected(f"paid_on {c.paid_on} is in the future")
        key = StreamKey(c.account_no, c.service_code)
        loaded = await self._store.load(key, payment_id=c.payment_id)
        if not loaded.account_open:
            return await self._park_until_open(c, source, c.payment_id)
        if loaded.payment_owner is not None and loaded.payment_owner != key:
            owner = loaded.payment_owner
            raise Rejected(
                f"payment_id {c.payment_id!r} is already recorded for account {owner.account_no},"
                f" service {owner.service_code}"
            )
        known = loaded.ledger.known_payment(c.payment_id)
        if known is not None:
            if (known.paid_on, known.amount, known.bank) != (c.paid_on, c.amount, c.bank):
                raise Rejected(
                    f"payment_id {c.payment_id!r} was recorded with paid_on {known.paid_on}, amount"
                    f" {known.amount}, bank {known.bank!r}; this message says {c.paid_on}, {c.amount},"
                    f" {c.bank!r}"
                )
            return Outcome.DUPLICATE
        try:
            events = loaded.ledger.receive_payment(c.payment_id, c.paid_on, c.amount, c.bank)
        except (InvalidLedgerEvent, ValueError) as exc:
            raise Rejected(f"invalid payment: {exc}") from exc
        for event in events:
            await self._store.append(loaded, event, source)
        for parked in loaded.waiting_cancellations:
            await self._store.unpark(parked)
            await self._apply_parked(parked)
        return Outcome.APPLIED

    async def _cancel_payment(self, c: CancelPayment, source: Source) -> Outcome:
        owner, account_open = await self._store.locate_payment(c.account_no, c.payment_id)
        if owner is None:
            if not account_open:
                return await self._park_until_open(c, source, c.payment_id)
            await self._store.park(c, source, "payment", c.payment_id)
            return Outcome.PARKED
        if owner.account_no != c.account_no:
            raise Rejected(f"payment_id {c.payment_id!r} belongs to another account, not {c.account_no}")
        loaded = await self._store.load(owner)
        try:
            events = loaded.ledger.reverse_payment(c.payment_id, c.reason)
        except UnknownPayment:  # the index knows it but the stream does not: never parked silently
            await self._store.park(c, source, "payment", c.payment_id)
            return Outcome.PARKED
        except (InvalidLedgerEvent, ValueError) as exc:
            raise Rejected(f"invalid cancellation: {exc}") from exc
        for event in events:
            await self._store.append(loaded, event, source)
        return Outcome.APPLIED if events else Outcome.DUPLICATE

    # --- accruals and corrections -----------------------------------------------------------

    async def _post_correction(self, c: PostCorrection, source: Source) -> Outcome:
        _check_amount(c.amount, "amount")
        loaded = await self._store.load(StreamKey(c.account_no, c.service_code))
        if not loaded.account_open:
            return await self._park_until_open(c, source)
        known = loaded.ledger.known_correction(c.correction_id)
        if known is not None:
            if (known.period, known.amount) != (c.period, c.amount):
                raise Rejected(
                    f"correction_id {c.correction_id!r} was recorded as {known.amount} for {known.period};"
                    f" this message says {c.amount} for {c.period}"
                )
            return Outcome.DUPLICATE
        try:
            events = loaded.ledger.post_correction(c.correction_id, c.period, c.amount, c.reason)
        except (InvalidLedgerEvent, ValueError) as exc:
            raise Rejected(f"invalid correction: {exc}") from exc
        for event in events:
            await self._store.append(loaded, event, source)
        return Outcome.APPLIED

    async def _post_accrual(self, c: PostAccrual, source: Source) -> Outcome:
        _check_amount(c.amount, "amount")
        if c.amount < 0:
            raise Rejected(
                f"invalid accrual: total must not be negative, got {c.amount} (a charge is never a credit:"
                " credits come as corrections, EstimateReversed or CorrectionIssued)"
            )
        loaded = await self._store.load(StreamKey(c.account_no, c.service_code))
        if not loaded.account_open:
            return await self._park_until_open(c, source)
        known = loaded.ledger.known_charge(c.charge_id)
        if known is not None:
            if (known.period, known.amount) != (c.period, c.amount):
                raise Rejected(
                    f"charge_id {c.charge_id!r} was accrued as {known.amount} for {known.period};"
                    f" this message says {c.amount} for {c.period}"
                )
            return Outcome.DUPLICATE
        try:
            events = loaded.ledger.post_accrual(
                c.charge_id, c.period, c.amount, c.tariff, c.consumption_kwh, c.estimated
            )
        except (InvalidLedgerEvent, ValueError) as exc:
            raise Rejected(f"invalid accrual: {exc}") from exc
        for event in events:
            await self._store.append(loaded, event, source)
        return Outcome.APPLIED

    # --- parked facts -----------------------------------------------------------------------

    async def _park_until_open(
        self, command: Command, source: Source, payment_id: str | None = None
    ) -> Outcome:
        _check_fact(command)  # what would be refused when applied is refused now, not parked
        if await self._store.park(command, source, "account", payment_id):
            return Outcome.PARKED
        return await self.execute(command, source)  # it opened meanwhile

    async def _apply_parked(self, parked: Parked) -> None:
        """Apply a parked fact now; if it turns out invalid, dead-letter it (not the message being
        handled, which is another one)."""
        try:
            outcome = await self.execute(parked.command, parked.source)
        except Rejected as exc:
            log.warning(
                "parked message rejected when applied",
                extra={"event_id": str(parked.source.event_id), "reason": exc.reason},
            )
            await self._store.dead_letter(parked, exc.reason)
            return
        log.info(
            "parked message applied",
            extra={"event_id": str(parked.source.event_id), "outcome": outcome.value},
        )


def _check_fact(command: Command) -> None:
    """Refuse, with the reason it would get when applied, a fact that is invalid by itself: the domain
    event it would become does not build (third decimal, sign, empty id, ...)."""
    try:
        match command:
            case ReceivePayment():
                PaymentReceived.of(command.payment_id, command.paid_on, command.amount, command.bank)
            case PostCorrection():
                CorrectionPosted(command.correction_id, command.period, command.amount, command.reason)
            case PostAccrual():
                AccrualPosted(
                    command.charge_id,
                    command.period,
                    command.amount,
                    command.tariff,
                    command.consumption_kwh,
                    command.estimated,
                )
    except (InvalidLedgerEvent, ValueError) as exc:
        kind = {ReceivePayment: "payment", PostCorrection: "correction", PostAccrual: "accrual"}
        raise Rejected(f"invalid {kind[type(command)]}: {exc}") from exc


def _check_amount(amount: Decimal, name: str) -> None:
    if abs(amount) >= MAX_AMOUNT:
        raise Rejected(f"{name} {amount} is out of range (at most {MAX_AMOUNT} in absolute value)")
