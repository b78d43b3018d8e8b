"""The read models' SQL: writes shared by projections and the API, and the queries the API answers from."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from accounts.domain.proof import PaymentRecord
from contracts.events.accounts import account_stream
from contracts.money import format_money
from service_runtime.db import Connection

# --- links ------------------------------------------------------------------------------------------


async def write_link(
    conn: Connection, account_no: str, user_id: uuid.UUID, linked: bool, version: int, at: datetime
) -> None:
    """Apply one AccountLinked/AccountUnlinked (stream version `version`); older versions change nothing.

    Called by the links projection and, in the appending transaction, by the API (read-your-writes),
    so the same event may arrive twice: the version guard makes the second one a no-op.
    """
    await conn.execute(
        "INSERT INTO account_links (account_no, user_id, linked, version, changed_at)"
        " VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (account_no, user_id) DO UPDATE SET linked = excluded.linked,"
        " version = excluded.version, changed_at = excluded.changed_at"
        " WHERE account_links.version < excluded.version",
        (account_no, user_id, linked, version, at),
    )


async def is_linked(conn: Connection, user_id: uuid.UUID, account_no: str) -> bool:
    cur = await conn.execute(
        "SELECT 1 FROM account_links WHERE account_no = %s AND user_id = %s AND linked",
        (account_no, user_id),
    )
    return await cur.fetchone() is not None


async def linked_account_nos(conn: Connection, user_id: uuid.UUID) -> list[str]:
    cur = await conn.execute(
        "SELECT account_no FROM account_links WHERE user_id = %s AND linked ORDER BY account_no", (user_id,)
    )
    return [str(row[0]) for row in await cur.fetchall()]


# --- service requests -------------------------------------------------------------------------------


async def write_request_submitted(
    conn: Connection,
    *,
    request_id: str,
    account_no: str,
    user_id: uuid.UUID,
    category: str,
    text: str,
    version: int,
    at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO service_requests (request_id, account_no, user_id, category, text, status, comment,"
        " submitted_at, updated_at, version) VALUES (%s, %s, %s, %s, %s, 'submitted', '', %s, %s, %s)"
        " ON CONFLICT (request_id) DO NOTHING",
        (request_id, account_no, user_id, category, text, at, at, version),
    )


async def write_request_status(
    conn: Connection, *, request_id: str, status: str, comment: str, version: int, at: datetime
) -> None:
    await conn.execute(
        "UPDATE service_requests SET status = %s, comment = %s, updated_at = %s, version = %s"
        " WHERE request_id = %s AND version < %s",
        (status, comment, at, version, request_id, version),
    )


async def list_requests(conn: Connection, user_id: uuid.UUID, account_no: str) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT request_id, category, text, status, comment, submitted_at, updated_at FROM service_requests"
        " WHERE account_no = %s AND user_id = %s ORDER BY submitted_at DESC, request_id",
        (account_no, user_id),
    )
    return [
        {
            "request_id": request_id,
            "category": category,
            "text": text,
            "status": status,
            "comment": comment,
            "submitted_at": submitted_at.isoformat(),
            "updated_at": updated_at.isoformat(),
        }
        for request_id, category, text, status, comment, submitted_at, updated_at in await cur.fetchall()
    ]


# --- accounts ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountRow:
    account_no: str
    payer_name: str
    address: str
    residents: int
    tariff_option: str
    electric_stove: bool
    living_alone: bool
    district_office_code: str
    opened_on: date
    meter_serial: str | None
    meter_digits: int | None
    meter_installed_on: date | None
    meter_replaced_on: date | None


_ACCOUNT_COLUMNS = (
    "account_no, payer_name, address, residents, tariff_option, electric_stove, living_alone,"
    " district_office_code, opened_on, meter_serial, meter_digits, meter_installed_on, meter_replaced_on"
)


async def account_row(conn: Connection, account_no: str) -> AccountRow | None:
    cur = await conn.execute(
        f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE account_no = %s",  # noqa: S608 (constant)
        (account_no,),
    )
    row = await cur.fetchone()
    return AccountRow(*row) if row else None


async def account_rows(conn: Connection, account_nos: list[str]) -> dict[str, AccountRow]:
    cur = await conn.execute(
        f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE account_no = ANY(%s)",  # noqa: S608 (constant)
        (account_nos,),
    )
    return {str(row[0]): AccountRow(*row) for row in await cur.fetchall()}


async def district_office(conn: Connection, code: str) -> dict[str, str] | None:
    cur = await conn.execute(
        "SELECT code, name, address, phone, hours FROM district_offices WHERE code = %s", (code,)
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return dict(zip(("code", "name", "address", "phone", "hours"), row, strict=True))


async def meter_history(conn: Connection, account_no: str) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT serial, digits, installed_on, initial_reading, removed_on, final_reading FROM meter_history"
        " WHERE account_no = %s ORDER BY installed_version",
        (account_no,),
    )
    return [
        {
            "serial": serial,
            "digits": digits,
            "installed_on": installed_on.isoformat(),
            "initial_reading": format_money(initial),
            "removed_on": removed_on.isoformat() if removed_on else None,
            "final_reading": format_money(final) if final is not None else None,
        }
        for serial, digits, installed_on, initial, removed_on, final in await cur.fetchall()
    ]


# --- payment proof ----------------------------------------------------------------------------------


async def proof_inputs(conn: Connection, account_no: str) -> tuple[bool, list[PaymentRecord]]:
    """Whether the account is in the register (its stream exists), and its payments as ledger published them.

    Both queries always run, whatever the first one answers, so an unknown account costs the same.
    """
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM events WHERE stream_id = %s AND stream_version = 1)",
        (account_stream(account_no),),
    )
    row = await cur.fetchone()
    known = bool(row and row[0])
    cur = await conn.execute(
        "SELECT payment_id, paid_on, amount, stream_id, stream_version, reversed FROM proof_payments"
        " WHERE account_no = %s AND paid_on IS NOT NULL",
        (account_no,),
    )
    payments = [
        PaymentRecord(payment_id, paid_on, Decimal(amount), stream_id, stream_version, reversed_)
        for payment_id, paid_on, amount, stream_id, stream_version, reversed_ in await cur.fetchall()
    ]
    return known, payments
