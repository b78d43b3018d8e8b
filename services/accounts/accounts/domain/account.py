"""The `Account` aggregate: one personal account (лицевой счёт) of the register, stream `account:{no}`.

`decide(account, command)` turns a back-office command (contracts.backoffice) into canonical events
(contracts.events.accounts) without changing anything; `account.apply(event)` evolves the state, and
`Account.replay(no, events)` rebuilds it from its stream. Nothing here does I/O.

Rules:
- AccountOpened on a new account → AccountOpened (with the opening balance, which the ledger uses)
  + MeterInstalled (the first meter). The same opening facts again → nothing; other facts for an
  opened account → `Rejected` (a conflict for a human to look at, never merged).
- Attribute changes (residents, tariff option, payer) are dated facts kept as timelines. A fact whose
  (effective_from, value) is already on the timeline is a re-sent fact → nothing. A change effective
  before the account was opened → `Rejected`. Any change before the account is opened raises
  `AccountNotOpened` (the application parks it and applies it right after the opening).
  The *current* value is the one with the latest `effective_from` (ties: the later fact wins), so a
  late, back-dated fact completes the history without overriding a newer value.
- MeterReplaced → MeterReplaced + MeterInstalled (the new meter, installed on `replaced_on` with its
  initial reading). A replacement already in the history → nothing (even if later replacements
  followed). Otherwise `old_serial` must be the current meter, the new serial must differ, and the
  date must not precede the current meter's installation; if not → `Rejected`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Generic, TypeVar

from accounts.domain.errors import AccountNotOpened, Rejected
from contracts import backoffice as bo
from contracts.events.accounts import (
    AccountOpened,
    MeterInstalled,
    MeterReplaced,
    PayerChanged,
    ResidentsChanged,
    TariffOptionChanged,
)

AccountEvent = (
    AccountOpened | MeterInstalled | MeterReplaced | ResidentsChanged | TariffOptionChanged | PayerChanged
)
AccountCommand = (
    bo.AccountOpened | bo.ResidentsChanged | bo.TariffOptionChanged | bo.PayerChanged | bo.MeterReplaced
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Dated(Generic[T]):
    """A value in force from a date."""

    effective_from: date
    value: T


def current_value(timeline: Iterable[Dated[T]]) -> Dated[T] | None:
    """The fact with the latest `effective_from`; among equal dates, the one applied last."""
    best: Dated[T] | None = None
    for fact in timeline:
        if best is None or fact.effective_from >= best.effective_from:
            best = fact
    return best


@dataclass(frozen=True, slots=True)
class Meter:
    """One meter's time on the account: installed with an initial reading, removed with a final one."""

    serial: str
    digits: int
    installed_on: date
    initial_reading: Decimal
    removed_on: date | None = None
    final_reading: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Account:
    account_no: str
    version: int = 0
    opening: AccountOpened | None = None
    opening_meter: MeterInstalled | None = None
    payers: tuple[Dated[str], ...] = ()
    residents_timeline: tuple[Dated[int], ...] = ()
    tariffs: tuple[Dated[str], ...] = ()
    meters: tuple[Meter, ...] = ()
    replacements: tuple[MeterReplaced, ...] = ()

    # --- reading the state ---------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self.opening is not None

    @property
    def meter(self) -> Meter | None:
        """The meter in service (the last one installed)."""
        return self.meters[-1] if self.meters and self.meters[-1].removed_on is None else None

    @property
    def replaced_on(self) -> date | None:
        """The date of the last meter replacement («дата замены счётчика»), if any."""
        return self.replacements[-1].replaced_on if self.replacements else None

    @property
    def payer_name(self) -> str | None:
        fact = current_value(self.payers)
        return fact.value if fact else None

    @property
    def residents(self) -> int | None:
        fact = current_value(self.residents_timeline)
        return fact.value if fact else None

    @property
    def tariff_option(self) -> str | None:
        fact = current_value(self.tariffs)
        return fact.value if fact else None

    # --- evolving --------------------------------------------------------------------------------
    @classmethod
    def replay(cls, account_no: str, events: Iterable[AccountEvent]) -> Account:
        account = cls(account_no)
        for event in events:
            account = account.apply(event)
        return account

    def apply(self, event: AccountEvent) -> Account:
        version = self.version + 1
        if isinstance(event, AccountOpened):
            return dataclasses.replace(
                self,
                version=version,
                opening=event,
                payers=(*self.payers, Dated(event.opened_on, event.payer_name)),
                residents_timeline=(*self.residents_timeline, Dated(event.opened_on, event.residents)),
                tariffs=(*self.tariffs, Dated(event.opened_on, str(event.tariff_option))),
            )
        if isinstance(event, MeterInstalled):
            meter = Meter(event.serial, event.digits, event.installed_on, event.initial_reading)
            return dataclasses.replace(
                self,
                version=version,
                meters=(*self.meters, meter),
                opening_meter=self.opening_meter or event,
            )
        if isinstance(event, MeterReplaced):
            meters = list(self.meters)
            for i in range(len(meters) - 1, -1, -1):
                if meters[i].serial == event.old_serial and meters[i].removed_on is None:
                    meters[i] = dataclasses.replace(
                        meters[i], removed_on=event.replaced_on, final_reading=event.final_reading
                    )
                    break
            return dataclasses.replace(
                self, version=version, meters=tuple(meters), replacements=(*self.replacements, event)
            )
        if isinstance(event, ResidentsChanged):
            fact = Dated(event.effective_from, event.residents)
            return dataclasses.replace(
                self, version=version, residents_timeline=(*self.residents_timeline, fact)
            )
        if isinstance(event, TariffOptionChanged):
            return dataclasses.replace(
                self,
                version=version,
                tariffs=(*self.tariffs, Dated(event.effective_from, str(event.tariff_option))),
            )
        if isinstance(event, PayerChanged):
            return dataclasses.replace(
                self, version=version, payers=(*self.payers, Dated(event.effective_from, event.payer_name))
            )
        raise TypeError(f"not an account event: {type(event).__name__}")


# --- deciding ------------------------------------------------------------------------------------
def opening_events(command: bo.AccountOpened) -> tuple[AccountOpened, MeterInstalled]:
    """The canonical events an AccountOpened command stands for."""
    opened = AccountOpened(
        account_no=command.account_no,
        payer_name=command.payer_name,
        address=command.address,
        residents=command.residents,
        electric_stove=command.electric_stove,
        living_alone=command.living_alone,
        tariff_option=command.tariff_option,
        district_office_code=command.district_office_code,
        opened_on=command.opened_on,
        opening_balance=command.opening_balance,
    )
    meter = MeterInstalled(
        account_no=command.account_no,
        serial=command.meter.serial,
        digits=command.meter.digits,
        installed_on=command.meter.installed_on,
        initial_reading=command.meter.initial_reading,
    )
    return opened, meter


def decide(account: Account, command: AccountCommand) -> list[AccountEvent]:
    """The events `command` adds to `account`: [] for a re-sent fact.

    Raises `AccountNotOpened` (park it) or `Rejected` (dead-letter it).
    """
    if command.account_no != account.account_no:
        raise Rejected(f"command for account {command.account_no} sent to account {account.account_no}")
    if isinstance(command, bo.AccountOpened):
        return _decide_open(account, command)
    if account.opening is None:
        raise AccountNotOpened(account.account_no)
    opened_on = account.opening.opened_on
    if isinstance(command, bo.MeterReplaced):
        return _decide_meter_replacement(account, command)
    if command.effective_from < opened_on:
        raise Rejected(
            f"{type(command).__name__} effective from {command.effective_from}, before the account"
            f" was opened on {opened_on}"
        )
    if isinstance(command, bo.ResidentsChanged):
        if Dated(command.effective_from, command.residents) in account.residents_timeline:
            return []
        return [
            ResidentsChanged(
                account_no=command.account_no,
                residents=command.residents,
                effective_from=command.effective_from,
            )
        ]
    if isinstance(command, bo.TariffOptionChanged):
        if Dated(command.effective_from, str(command.tariff_option)) in account.tariffs:
            return []
        return [
            TariffOptionChanged(
                account_no=command.account_no,
                tariff_option=command.tariff_option,
                effective_from=command.effective_from,
            )
        ]
    if isinstance(command, bo.PayerChanged):
        if Dated(command.effective_from, command.payer_name) in account.payers:
            return []
        return [
            PayerChanged(
                account_no=command.account_no,
                payer_name=command.payer_name,
                effective_from=command.effective_from,
            )
        ]
    raise TypeError(f"not an account command: {type(command).__name__}")


def _decide_open(account: Account, command: bo.AccountOpened) -> list[AccountEvent]:
    opened, meter = opening_events(command)
    if account.opening is None:
        return [opened, meter]
    differences = [
        name for name in AccountOpened.model_fields if getattr(account.opening, name) != getattr(opened, name)
    ]
    if account.opening_meter is not None:
        differences += [
            f"meter.{name}"
            for name in ("serial", "digits", "installed_on", "initial_reading")
            if getattr(account.opening_meter, name) != getattr(meter, name)
        ]
    if differences:
        raise Rejected(
            f"account {account.account_no} is already open with other data ({', '.join(differences)})"
        )
    return []


def _decide_meter_replacement(account: Account, command: bo.MeterReplaced) -> list[AccountEvent]:
    replaced = MeterReplaced(
        account_no=command.account_no,
        old_serial=command.old_serial,
        final_reading=command.final_reading,
        new_serial=command.new_serial,
        digits=command.digits,
        initial_reading=command.initial_reading,
        replaced_on=command.replaced_on,
    )
    if replaced in account.replacements:
        return []
    current = account.meter
    if current is None or current.serial != command.old_serial:
        in_service = current.serial if current else "none"
        raise Rejected(f"meter {command.old_serial} is not the account's current meter (it is {in_service})")
    if command.new_serial == command.old_serial:
        raise Rejected(f"the new meter has the old meter's serial {command.old_serial}")
    if command.replaced_on < current.installed_on:
        raise Rejected(
            f"replaced on {command.replaced_on}, before meter {current.serial} was installed"
            f" on {current.installed_on}"
        )
    installed = MeterInstalled(
        account_no=command.account_no,
        serial=command.new_serial,
        digits=command.digits,
        installed_on=command.replaced_on,
        initial_reading=command.initial_reading,
    )
    return [replaced, installed]
