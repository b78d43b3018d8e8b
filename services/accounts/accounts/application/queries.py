"""Queries behind the public-API-shaped internal endpoints (authorization is checked by the caller)."""

from __future__ import annotations

import uuid
from typing import Any

from accounts.adapters.read_models import (
    AccountRow,
    account_row,
    account_rows,
    district_office,
    linked_account_nos,
)
from accounts.adapters.streams import load_account
from accounts.domain.account import Account
from service_runtime.db import Connection
from service_runtime.eventstore import EventStore


def _row_from_aggregate(account: Account) -> AccountRow | None:
    opening, meter = account.opening, account.meter
    if opening is None:
        return None
    return AccountRow(
        account_no=account.account_no,
        payer_name=account.payer_name or opening.payer_name,
        address=opening.address,
        residents=account.residents if account.residents is not None else opening.residents,
        tariff_option=account.tariff_option or opening.tariff_option,
        electric_stove=opening.electric_stove,
        living_alone=opening.living_alone,
        district_office_code=opening.district_office_code,
        opened_on=opening.opened_on,
        meter_serial=meter.serial if meter else None,
        meter_digits=meter.digits if meter else None,
        meter_installed_on=meter.installed_on if meter else None,
        meter_replaced_on=account.replaced_on,
    )


async def _account(conn: Connection, store: EventStore, account_no: str) -> AccountRow | None:
    """From the read model; from the event store while the projection hasn't caught up yet (a link
    can be made a moment after the account was opened, before the `accounts` projection applied it)."""
    row = await account_row(conn, account_no)
    if row is None:
        row = _row_from_aggregate(await load_account(conn, store, account_no))
    return row


async def account_info(conn: Connection, store: EventStore, account_no: str) -> dict[str, Any] | None:
    row = await _account(conn, store, account_no)
    if row is None:
        return None
    known = await district_office(conn, row.district_office_code)
    # An office the reference data hasn't described yet: its code, and nulls for the contacts.
    office: dict[str, str | None] = (
        dict(known)
        if known
        else {"code": row.district_office_code} | dict.fromkeys(("name", "address", "phone", "hours"))
    )
    return {
        "account_no": row.account_no,
        "payer_name": row.payer_name,
        "address": row.address,
        "residents": row.residents,
        "tariff_option": row.tariff_option,
        "electric_stove": row.electric_stove,
        "living_alone": row.living_alone,
        "opened_on": row.opened_on.isoformat(),
        "meter": {
            "serial": row.meter_serial,
            "digits": row.meter_digits,
            "installed_on": row.meter_installed_on.isoformat() if row.meter_installed_on else None,
            "replaced_on": row.meter_replaced_on.isoformat() if row.meter_replaced_on else None,
        },
        "district_office": office,
    }


async def user_accounts(conn: Connection, store: EventStore, user_id: uuid.UUID) -> list[dict[str, Any]]:
    """The user's linked accounts. `balance` is the ledger's: null here, the gateway fills it in."""
    numbers = await linked_account_nos(conn, user_id)
    rows = await account_rows(conn, numbers)
    result = []
    for number in numbers:
        row = rows.get(number) or await _account(conn, store, number)
        result.append(
            {
                "account_no": number,
                "payer_name": row.payer_name if row else None,
                "address": row.address if row else None,
                "balance": None,
            }
        )
    return result
