"""Reading receipts' tables: the facts a bill is built from, bills, links and subscriptions."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any

from receipts.domain import periods
from receipts.domain.balances import PeriodFigures
from receipts.domain.bill import (
    MAIN_SERVICE,
    AccountFacts,
    AttributeChange,
    BillFacts,
    CorrectionFacts,
    MeterFacts,
    OfficeFacts,
    PaymentFacts,
    ReadingFacts,
    TariffRowFacts,
    VatFacts,
)
from service_runtime.db import Connection


# --- issuing ----------------------------------------------------------------------------------------
async def pending_billed_periods(
    conn: Connection, account_nos: list[str]
) -> list[tuple[str, str, list[str]]]:
    """(account, period, charge ids) of the PeriodBilled seen for these accounts and not yet issued."""
    cur = await conn.execute(
        "SELECT b.account_no, b.period, b.charge_ids FROM billed_periods b WHERE b.account_no = ANY(%s)"
        " AND NOT EXISTS (SELECT 1 FROM receipts r WHERE r.account_no = b.account_no AND r.period = b.period)"
        " ORDER BY b.account_no, b.period",
        (account_nos,),
    )
    return [(a, p, [str(c) for c in ids]) for a, p, ids in await cur.fetchall()]


async def is_ready(conn: Connection, account_no: str, charge_ids: list[str]) -> bool:
    """The account is known, and every charge was both rated (ChargeCalculated) and posted (AccrualPosted)."""
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM accounts WHERE account_no = %(a)s),"
        " (SELECT count(*) FROM charges WHERE account_no = %(a)s AND charge_id = ANY(%(ids)s)),"
        " (SELECT count(DISTINCT item_id) FROM ledger_entries WHERE account_no = %(a)s AND kind = 'accrual'"
        "  AND item_id = ANY(%(ids)s))",
        {"a": account_no, "ids": charge_ids},
    )
    row = await cur.fetchone()
    assert row is not None
    wanted = len(set(charge_ids))
    return bool(row[0]) and int(row[1]) == wanted and int(row[2]) == wanted


async def load_bill_facts(
    conn: Connection,
    account_no: str,
    period: str,
    charge_ids: list[str],
    *,
    receipt_id: uuid.UUID,
    issued_at: datetime,
) -> BillFacts | None:
    cur = await conn.execute(
        "SELECT address, electric_stove, living_alone, district_office_code, opened_on FROM accounts"
        " WHERE account_no = %s",
        (account_no,),
    )
    account_row = await cur.fetchone()
    if account_row is None:
        return None
    address, stove, alone, office_code, opened_on = account_row
    last = periods.last_day(period)

    cur = await conn.execute(
        "SELECT name, effective_from, version, value FROM account_attributes WHERE account_no = %s",
        (account_no,),
    )
    attributes: dict[str, list[AttributeChange]] = defaultdict(list)
    for name, effective_from, version, value in await cur.fetchall():
        attributes[name].append(AttributeChange(effective_from, int(version), value))

    cur = await conn.execute(
        "SELECT charge FROM charges WHERE account_no = %s AND charge_id = ANY(%s)", (account_no, charge_ids)
    )
    charges = sorted((row[0] for row in await cur.fetchall()), key=_charge_order)

    cur = await conn.execute(
        "SELECT serial, digits, installed_on, removed_on FROM meters WHERE account_no = %s", (account_no,)
    )
    meters = [MeterFacts(s, int(d), i, r) for s, d, i, r in await cur.fetchall()]
    cur = await conn.execute(
        "SELECT reading_date, meter_serial, source FROM readings WHERE account_no = %s AND reading_date <= %s"
        " ORDER BY reading_date",
        (account_no, last),
    )
    readings = [ReadingFacts(d, s, src) for d, s, src in await cur.fetchall()]

    cur = await conn.execute(
        "SELECT service_code, period, opening_balance, accrued, corrections, paid, closing_balance"
        " FROM service_periods WHERE account_no = %s ORDER BY service_code, period",
        (account_no,),
    )
    figures: dict[str, list[PeriodFigures]] = defaultdict(list)
    for service, p, o, a, c, paid, closing in await cur.fetchall():
        figures[service].append(PeriodFigures(p, o, a, c, paid, closing))

    cur = await conn.execute(
        "SELECT kind, item_id, amount, entry_date, bank, reason FROM ledger_entries WHERE account_no = %s"
        " AND service_code = %s AND period = %s AND kind IN ('payment', 'correction') AND NOT reversed"
        " ORDER BY entry_date NULLS LAST, stream_version",
        (account_no, MAIN_SERVICE, period),
    )
    payments: list[PaymentFacts] = []
    corrections: list[CorrectionFacts] = []
    for kind, item_id, amount, entry_date, bank, reason in await cur.fetchall():
        if kind == "payment":
            payments.append(PaymentFacts(item_id, entry_date, amount, bank or ""))
        else:
            corrections.append(CorrectionFacts(item_id, amount, reason or ""))

    cur = await conn.execute(
        "SELECT effective_from, flat, tier1, tier2, tier3, norms FROM tariff_rows WHERE effective_from <= %s",
        (last,),
    )
    tariffs = [TariffRowFacts(e, f, t1, t2, t3, n) for e, f, t1, t2, t3, n in await cur.fetchall()]
    cur = await conn.execute("SELECT effective_from, rate FROM vat_rates WHERE effective_from <= %s", (last,))
    vat_rates = [VatFacts(e, r) for e, r in await cur.fetchall()]

    cur = await conn.execute(
        "SELECT code, name, address, phone, hours FROM district_offices WHERE code = %s", (office_code,)
    )
    office_row = await cur.fetchone()
    office = OfficeFacts(*office_row) if office_row else None

    return BillFacts(
        receipt_id=receipt_id,
        issued_at=issued_at,
        period=period,
        account=AccountFacts(account_no, address, stove, alone, office_code, opened_on, dict(attributes)),
        charges=charges,
        figures=dict(figures),
        payments=payments,
        corrections=corrections,
        tariffs=tariffs,
        vat_rates=vat_rates,
        meters=meters,
        readings=readings,
        office=office,
        reference=await reference_texts(conn),
    )


def _charge_order(charge: dict[str, Any]) -> tuple[str, str, str]:
    current = charge.get("current") or {}
    return (str(current.get("date") or "9999-12-31"), str(charge.get("period")), str(charge.get("charge_id")))


async def reference_texts(conn: Connection) -> dict[str, Any]:
    cur = await conn.execute("SELECT key, value FROM reference_texts")
    return {key: value for key, value in await cur.fetchall()}


# --- the API's reads --------------------------------------------------------------------------------
async def is_linked(conn: Connection, user_id: uuid.UUID, account_no: str) -> bool:
    cur = await conn.execute(
        "SELECT 1 FROM account_links WHERE account_no = %s AND user_id = %s AND linked", (account_no, user_id)
    )
    return await cur.fetchone() is not None


async def list_receipts(
    conn: Connection, account_no: str, from_period: str | None, to_period: str | None
) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT period, amount_due, due_date, issued_at FROM receipts WHERE account_no = %s"
        " AND (%s::text IS NULL OR period >= %s) AND (%s::text IS NULL OR period <= %s) ORDER BY period DESC",
        (account_no, from_period, from_period, to_period, to_period),
    )
    return [
        {"period": p, "amount_due": a, "due_date": d, "issued_at": i} for p, a, d, i in await cur.fetchall()
    ]


async def receipt_snapshot(
    conn: Connection, account_no: str, period: str
) -> tuple[dict[str, Any], str] | None:
    cur = await conn.execute(
        "SELECT snapshot, content_hash FROM receipts WHERE account_no = %s AND period = %s",
        (account_no, period),
    )
    row = await cur.fetchone()
    return (row[0], row[1]) if row else None


async def receipt_ids(conn: Connection, account_no: str, period: str) -> uuid.UUID | None:
    cur = await conn.execute(
        "SELECT receipt_id FROM receipts WHERE account_no = %s AND period = %s", (account_no, period)
    )
    row = await cur.fetchone()
    return row[0] if row else None


async def snapshot_by_id(conn: Connection, receipt_id: uuid.UUID) -> dict[str, Any] | None:
    cur = await conn.execute("SELECT snapshot FROM receipts WHERE receipt_id = %s", (receipt_id,))
    row = await cur.fetchone()
    return row[0] if row else None
