"""The Account aggregate, by example: what each back-office command adds to the stream."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from accounts.domain.account import Account, Dated, current_value, decide
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

NO = "100200300401"


def opened(**changes: Any) -> bo.AccountOpened:
    data: dict[str, Any] = {
        "account_no": NO,
        "payer_name": "Иванов Иван Иванович",
        "address": "г. Алматы, ул. Абая, 1, кв. 2",
        "residents": 2,
        "electric_stove": False,
        "living_alone": False,
        "tariff_option": "tiered",
        "district_office_code": "ROES-1",
        "opened_on": date(2024, 1, 10),
        "meter": {
            "serial": "M-1",
            "digits": 6,
            "installed_on": date(2024, 1, 10),
            "initial_reading": "100.00",
        },
        "opening_balance": "1500.50",
    }
    data.update(changes)
    return bo.AccountOpened.model_validate(data)


def replaced(old: str, new: str, on: date, **changes: Any) -> bo.MeterReplaced:
    data: dict[str, Any] = {
        "account_no": NO,
        "old_serial": old,
        "final_reading": "2345.60",
        "new_serial": new,
        "digits": 7,
        "initial_reading": "0.00",
        "replaced_on": on,
    }
    data.update(changes)
    return bo.MeterReplaced.model_validate(data)


def run(*commands: Any) -> Account:
    account = Account(NO)
    for command in commands:
        for event in decide(account, command):
            account = account.apply(event)
    return account


def test_opening_gives_the_account_and_its_first_meter_with_the_opening_balance() -> None:
    events = decide(Account(NO), opened())
    assert [type(e) for e in events] == [AccountOpened, MeterInstalled]
    account_opened, meter = events
    assert isinstance(account_opened, AccountOpened) and isinstance(meter, MeterInstalled)
    assert account_opened.opening_balance == Decimal("1500.50")
    assert (meter.serial, meter.digits, meter.installed_on, meter.initial_reading) == (
        "M-1",
        6,
        date(2024, 1, 10),
        Decimal("100.00"),
    )
    account = run(opened())
    assert account.is_open and account.version == 2
    assert account.meter is not None and account.meter.serial == "M-1"
    assert (account.payer_name, account.residents, account.tariff_option) == (
        "Иванов Иван Иванович",
        2,
        "tiered",
    )


def test_the_same_opening_again_adds_nothing_and_other_data_is_rejected() -> None:
    account = run(opened())
    assert decide(account, opened()) == []
    # Even after the attributes changed since: the opening facts are compared, not the current state.
    later = run(opened(), bo.ResidentsChanged(account_no=NO, residents=5, effective_from=date(2024, 6, 1)))
    assert decide(later, opened()) == []
    with pytest.raises(Rejected, match="residents"):
        decide(account, opened(residents=3))
    with pytest.raises(Rejected, match=r"meter\.serial"):
        decide(account, opened(meter={**opened().meter.model_dump(), "serial": "OTHER"}))


def test_changes_before_the_opening_are_not_applied() -> None:
    for command in (
        bo.ResidentsChanged(account_no=NO, residents=3, effective_from=date(2024, 2, 1)),
        bo.TariffOptionChanged(account_no=NO, tariff_option="flat", effective_from=date(2024, 2, 1)),
        bo.PayerChanged(account_no=NO, payer_name="Петров П.", effective_from=date(2024, 2, 1)),
        replaced("M-1", "M-2", date(2024, 2, 1)),
    ):
        with pytest.raises(AccountNotOpened):
            decide(Account(NO), command)


def test_dated_changes_and_their_resending() -> None:
    account = run(opened())
    residents = bo.ResidentsChanged(account_no=NO, residents=3, effective_from=date(2024, 3, 1))
    tariff = bo.TariffOptionChanged(account_no=NO, tariff_option="flat", effective_from=date(2024, 3, 1))
    payer = bo.PayerChanged(account_no=NO, payer_name="Петров Пётр", effective_from=date(2024, 4, 1))
    assert decide(account, residents) == [
        ResidentsChanged(account_no=NO, residents=3, effective_from=date(2024, 3, 1))
    ]
    assert decide(account, tariff) == [
        TariffOptionChanged(account_no=NO, tariff_option="flat", effective_from=date(2024, 3, 1))
    ]
    assert decide(account, payer) == [
        PayerChanged(account_no=NO, payer_name="Петров Пётр", effective_from=date(2024, 4, 1))
    ]
    account = run(opened(), residents, tariff, payer)
    assert (account.residents, account.tariff_option, account.payer_name) == (3, "flat", "Петров Пётр")
    for command in (residents, tariff, payer):
        assert decide(account, command) == []  # re-sent with a new event id: nothing new
    # The value the account already had, restated from its opening date: also nothing.
    assert (
        decide(account, bo.ResidentsChanged(account_no=NO, residents=2, effective_from=date(2024, 1, 10)))
        == []
    )


def test_a_late_back_dated_change_completes_the_history_without_overriding() -> None:
    account = run(
        opened(),
        bo.ResidentsChanged(account_no=NO, residents=4, effective_from=date(2024, 6, 1)),
        bo.ResidentsChanged(account_no=NO, residents=3, effective_from=date(2024, 3, 1)),
    )
    assert account.residents == 4
    assert Dated(date(2024, 3, 1), 3) in account.residents_timeline


def test_a_change_effective_before_the_opening_is_rejected() -> None:
    with pytest.raises(Rejected, match="before the account was opened"):
        decide(
            run(opened()), bo.ResidentsChanged(account_no=NO, residents=1, effective_from=date(2023, 12, 31))
        )


def test_meter_replacement_keeps_the_history_and_the_date() -> None:
    replacement = replaced("M-1", "M-2", date(2024, 5, 20))
    events = decide(run(opened()), replacement)
    assert events == [
        MeterReplaced(
            account_no=NO,
            old_serial="M-1",
            final_reading=Decimal("2345.60"),
            new_serial="M-2",
            digits=7,
            initial_reading=Decimal("0.00"),
            replaced_on=date(2024, 5, 20),
        ),
        MeterInstalled(
            account_no=NO,
            serial="M-2",
            digits=7,
            installed_on=date(2024, 5, 20),
            initial_reading=Decimal("0.00"),
        ),
    ]
    account = run(opened(), replacement)
    assert account.replaced_on == date(2024, 5, 20)
    assert account.meter is not None and (account.meter.serial, account.meter.digits) == ("M-2", 7)
    first, second = account.meters
    assert (first.removed_on, first.final_reading) == (date(2024, 5, 20), Decimal("2345.60"))
    assert (second.installed_on, second.removed_on) == (date(2024, 5, 20), None)
    # Re-sent, even after a later replacement: nothing.
    later = run(opened(), replacement, replaced("M-2", "M-3", date(2025, 1, 5)))
    assert decide(later, replacement) == []
    assert later.replaced_on == date(2025, 1, 5)


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (replaced("M-9", "M-2", date(2024, 5, 20)), "not the account's current meter"),
        (replaced("M-1", "M-1", date(2024, 5, 20)), "the old meter's serial"),
        (replaced("M-1", "M-2", date(2024, 1, 9)), "before meter M-1 was installed"),
    ],
)
def test_invalid_replacements_are_rejected(command: bo.MeterReplaced, reason: str) -> None:
    with pytest.raises(Rejected, match=reason):
        decide(run(opened()), command)


def test_a_command_for_another_account_is_rejected() -> None:
    with pytest.raises(Rejected):
        decide(Account("999999999999"), opened())


def test_current_value_prefers_the_latest_date_then_the_last_fact() -> None:
    assert current_value([]) is None
    facts = [Dated(date(2024, 1, 1), 1), Dated(date(2024, 3, 1), 2), Dated(date(2024, 2, 1), 3)]
    assert current_value(facts) == Dated(date(2024, 3, 1), 2)
    assert current_value([*facts, Dated(date(2024, 3, 1), 5)]) == Dated(date(2024, 3, 1), 5)
