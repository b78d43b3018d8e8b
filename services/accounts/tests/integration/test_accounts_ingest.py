"""Ingest of the back-office's account messages on the real stack: events, read models, dead letters."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from contracts import backoffice as bo
from tests.support.stack import eventually


async def test_every_account_message_type_with_duplicates_and_a_change_before_its_account(
    accounts: Any,
) -> None:
    no, office = accounts.new_account_no(), accounts.new_office_code()
    stream = f"account:{no}"
    _, office_msg = accounts.message(
        "DistrictOfficeUpdated",
        {
            "code": office,
            "name": "Ауэзовское РОЭС",
            "address": "ул. Жандосова, 98",
            "phone": "+7 727 356 99 99",
            "hours": "Пн–Пт 9:00–18:00",
        },
    )
    await accounts.send(bo.REFERENCE, office, office_msg)

    # A change that arrives before its account is parked, not applied and not lost.
    residents_id, residents = accounts.message(
        "ResidentsChanged", {"account_no": no, "residents": 4, "effective_from": "2024-03-01"}
    )
    await accounts.send(bo.ACCOUNTS, no, residents)
    await accounts.wait_handled("account-ingress", residents_id)
    assert await accounts.fetch("SELECT event_id FROM parked_messages WHERE account_no = %s", (no,)) == [
        (residents_id,)
    ]
    assert await accounts.events(stream) == []

    opened_id, opened = accounts.message("AccountOpened", accounts.opening(no, office))
    _, opened_again = accounts.message("AccountOpened", accounts.opening(no, office))  # same facts, new id
    tariff_id, tariff = accounts.message(
        "TariffOptionChanged", {"account_no": no, "tariff_option": "flat", "effective_from": "2024-04-01"}
    )
    payer_id, payer = accounts.message(
        "PayerChanged", {"account_no": no, "payer_name": "Сейтказиев Нурлан", "effective_from": "2024-05-01"}
    )
    replacement = {
        "account_no": no,
        "old_serial": "CE-0001",
        "final_reading": "4821.30",
        "new_serial": "CE-0002",
        "digits": 7,
        "initial_reading": "0.00",
        "replaced_on": "2024-06-17",
    }
    replaced_id, replaced = accounts.message("MeterReplaced", replacement)
    _, replaced_again = accounts.message("MeterReplaced", replacement)  # same facts, new id
    last_id, residents_again = accounts.message(
        "ResidentsChanged", {"account_no": no, "residents": 4, "effective_from": "2024-03-01"}
    )
    await accounts.send(
        bo.ACCOUNTS,
        no,
        opened,
        opened,
        opened_again,
        tariff,
        payer,
        replaced,
        replaced_again,
        residents_again,
    )
    await accounts.wait_handled("account-ingress", opened_id, last_id)

    events = await accounts.events(stream)
    assert [t for _, t, _ in events] == [
        "AccountOpened",
        "MeterInstalled",
        "ResidentsChanged",  # the parked one, applied right after the opening
        "TariffOptionChanged",
        "PayerChanged",
        "MeterReplaced",
        "MeterInstalled",
    ]
    ids = [i for i, _, _ in events]
    # The back-office event id is our first event's id; so a message can never be appended twice.
    assert (ids[0], ids[2], ids[3], ids[4], ids[5]) == (
        opened_id,
        residents_id,
        tariff_id,
        payer_id,
        replaced_id,
    )
    assert len(set(ids)) == len(ids)
    assert events[0][2]["opening_balance"] == "350.25"
    assert events[1][2] == {
        "account_no": no,
        "serial": "CE-0001",
        "digits": 6,
        "installed_on": "2024-01-15",
        "initial_reading": "120.00",
    }
    assert events[6][2] == {
        "account_no": no,
        "serial": "CE-0002",
        "digits": 7,
        "installed_on": "2024-06-17",
        "initial_reading": "0.00",
    }
    assert await accounts.fetch("SELECT count(*) FROM parked_messages WHERE account_no = %s", (no,)) == [(0,)]

    # The read models.
    async def projected() -> bool:
        rows = await accounts.fetch("SELECT version FROM accounts WHERE account_no = %s", (no,))
        return rows == [(7,)]

    await eventually(projected)
    (row,) = await accounts.fetch(
        "SELECT payer_name, residents, tariff_option, meter_serial, meter_digits, meter_installed_on,"
        " meter_replaced_on, opening_balance::text FROM accounts WHERE account_no = %s",
        (no,),
    )
    assert row == (
        "Сейтказиев Нурлан",
        4,
        "flat",
        "CE-0002",
        7,
        date(2024, 6, 17),
        date(2024, 6, 17),
        "350.25",
    )

    async def history_complete() -> bool:
        return len(await accounts.fetch("SELECT 1 FROM meter_history WHERE account_no = %s", (no,))) == 2

    await eventually(history_complete)

    # What the customer sees: the meter replacement date, the district office's contacts; the meter history.
    user = uuid.uuid4()
    await accounts.pay(no, f"p-{uuid.uuid4().hex[:10]}", date(2025, 1, 20), "5230.00")
    await accounts.wait_payments(no, 1)
    assert (await accounts.link(user, no, "2025-01", "5230.00")).status_code == 201
    office_arrived = False

    async def with_office() -> bool:
        nonlocal office_arrived
        info = (await accounts.api.get(f"/internal/v1/accounts/{no}", headers=accounts.auth(user))).json()
        office_arrived = info["district_office"]["name"] is not None
        return office_arrived

    await eventually(with_office)
    info = (await accounts.api.get(f"/internal/v1/accounts/{no}", headers=accounts.auth(user))).json()
    assert info == {
        "account_no": no,
        "payer_name": "Сейтказиев Нурлан",
        "address": "г. Алматы, мкр. Самал-2, д. 58, кв. 14",
        "residents": 4,
        "tariff_option": "flat",
        "electric_stove": True,
        "living_alone": False,
        "opened_on": "2024-01-15",
        "meter": {
            "serial": "CE-0002",
            "digits": 7,
            "installed_on": "2024-06-17",
            "replaced_on": "2024-06-17",
        },
        "district_office": {
            "code": office,
            "name": "Ауэзовское РОЭС",
            "address": "ул. Жандосова, 98",
            "phone": "+7 727 356 99 99",
            "hours": "Пн–Пт 9:00–18:00",
        },
    }
    meters = (
        await accounts.api.get(f"/internal/v1/accounts/{no}/meters", headers=accounts.auth(user))
    ).json()
    assert meters == [
        {
            "serial": "CE-0001",
            "digits": 6,
            "installed_on": "2024-01-15",
            "initial_reading": "120.00",
            "removed_on": "2024-06-17",
            "final_reading": "4821.30",
        },
        {
            "serial": "CE-0002",
            "digits": 7,
            "installed_on": "2024-06-17",
            "initial_reading": "0.00",
            "removed_on": None,
            "final_reading": None,
        },
    ]
    offices = (await accounts.api.get("/internal/v1/district-offices")).json()
    assert {
        "code": office,
        "name": "Ауэзовское РОЭС",
        "address": "ул. Жандосова, 98",
        "phone": "+7 727 356 99 99",
        "hours": "Пн–Пт 9:00–18:00",
    } in offices


async def test_invalid_messages_go_to_the_dead_letter_topic_with_the_reason(accounts: Any) -> None:
    no = accounts.new_account_no()
    await accounts.open_account(no)
    envelope_ok = accounts.message(
        "ResidentsChanged", {"account_no": no, "residents": 1, "effective_from": "2024-02-01"}
    )[1]
    bad = [
        b'{"event_id": "not json',  # malformed
        accounts.message(
            "ResidentsChanged", {"account_no": no, "residents": -1, "effective_from": "2024-02-01"}
        )[1],
        accounts.message("AccountClosed", {"account_no": no})[1],  # unknown type
        accounts.message(
            "MeterReplaced",
            {
                "account_no": no,
                "old_serial": "NOT-MINE",
                "final_reading": "10.00",
                "new_serial": "CE-9",
                "digits": 6,
                "initial_reading": "0.00",
                "replaced_on": "2024-06-01",
            },
        )[1],
        accounts.message("AccountOpened", accounts.opening(no, address="другой адрес"))[
            1
        ],  # conflicting re-open
        accounts.message(
            "ResidentsChanged", {"account_no": no, "residents": 3, "effective_from": "2023-12-31"}
        )[1],
    ]
    await accounts.send(bo.ACCOUNTS, no, *bad, envelope_ok)
    reasons = await accounts.dead_letters(bo.ACCOUNTS, no, len(bad))
    assert len(reasons) == len(bad)
    expected = [
        "Invalid JSON",
        "validation failed: residents",
        "unknown event type",
        "meter NOT-MINE is not the account's current meter",
        "already open with other data (address)",
        "before the account was opened",
    ]
    for fragment in expected:
        assert any(fragment in r for r in reasons), (fragment, reasons)
    # The consumer went on: the valid message after them is applied, the invalid ones added nothing.
    await accounts.wait_events(f"account:{no}", 3)
    assert [t for _, t, _ in await accounts.events(f"account:{no}")] == [
        "AccountOpened",
        "MeterInstalled",
        "ResidentsChanged",
    ]

    # A parked message found invalid once its account opens is dead-lettered too, with the original key.
    other = accounts.new_account_no()
    _, early = accounts.message(
        "MeterReplaced",
        {
            "account_no": other,
            "old_serial": "WRONG",
            "final_reading": "10.00",
            "new_serial": "CE-7",
            "digits": 6,
            "initial_reading": "0.00",
            "replaced_on": "2024-06-01",
        },
    )
    await accounts.send(bo.ACCOUNTS, other, early)
    await accounts.open_account(other)
    reasons = await accounts.dead_letters(bo.ACCOUNTS, other, 1)
    # (at least once: a batch redone after another message's dead letter sends it again)
    assert reasons and all("meter WRONG is not the account's current meter" in r for r in reasons)
    assert len(await accounts.events(f"account:{other}")) == 2
