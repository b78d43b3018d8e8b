"""Reading receipts' tables: the facts a bill is built from, bills, links and subscriptions."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

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


BillKey = tuple[str, str, list[str]]  # account, period, charge ids (as PeriodBilled lists them)


async def ready_billed_periods(conn: Connection, account_nos: list[str]) -> list[BillKey]:
    """The billed, not yet issued periods of these accounts that are ready, in one statement: (account,
    period, charge ids), by account and period. Ready: the account is known, and every charge was both
    rated (ChargeCalculated) and posted (AccrualPosted)."""
    cur = await conn.execute(
        "SELECT b.account_no, b.period, b.charge_ids::text,"
        " EXISTS (SELECT 1 FROM accounts a WHERE a.account_no = b.account_no),"
        " (SELECT count(*) FROM charges c WHERE c.account_no = b.account_no"
        "  AND c.charge_id IN (SELECT jsonb_array_elements_text(b.charge_ids))),"
        " (SELECT count(DISTINCT e.item_id) FROM ledger_entries e WHERE e.account_no = b.account_no"
        "  AND e.kind = 'accrual' AND e.item_id IN (SELECT jsonb_array_elements_text(b.charge_ids)))"
        " FROM billed_periods b WHERE b.account_no = ANY(%b::text[])"
        " AND NOT EXISTS (SELECT 1 FROM receipts r WHERE r.account_no = b.account_no AND r.period = b.period)"
        " ORDER BY b.account_no, b.period",
        (account_nos,),
    )
    ready: list[BillKey] = []
    for account_no, period, ids, known, rated, posted in await cur.fetchall():
        charge_ids = [str(c) for c in orjson.loads(ids)]
        wanted = len(set(charge_ids))
        if known and int(rated) == wanted and int(posted) == wanted:
            ready.append((account_no, period, charge_ids))
    return ready


async def load_many_bill_facts(
    conn: Connection, bills: Sequence[BillKey], *, receipt_ids: Sequence[uuid.UUID], issued_at: datetime
) -> list[BillFacts | None]:
    """`load_bill_facts` of many bills at once (the same facts, in the same order), with one statement per
    table whatever the number of bills (pipelined: one round trip). None for a bill whose account is not
    known."""
    if not bills:
        return []
    accounts = sorted({b[0] for b in bills})
    lasts = {b[1]: periods.last_day(b[1]) for b in bills}
    latest = max(lasts.values())
    charge_keys = sorted({(b[0], c) for b in bills for c in b[2]})
    period_keys = sorted({(b[0], b[1]) for b in bills})
    async with conn.pipeline():
        account_cur = await conn.execute(
            "SELECT account_no, address, electric_stove, living_alone, district_office_code, opened_on"
            " FROM accounts WHERE account_no = ANY(%b::text[])",
            (accounts,),
        )
        attribute_cur = await conn.execute(
            "SELECT account_no, name, effective_from, version, value FROM account_attributes"
            " WHERE account_no = ANY(%b::text[])",
            (accounts,),
        )
        charge_cur = await conn.execute(
            "SELECT c.account_no, c.charge_id, c.charge::text FROM unnest(%b::text[], %b::text[]) AS k(a, id)"
            " JOIN charges c ON c.account_no = k.a AND c.charge_id = k.id",
            ([a for a, _ in charge_keys], [c for _, c in charge_keys]),
        )
        meter_cur = await conn.execute(
            "SELECT account_no, serial, digits, installed_on, removed_on FROM meters"
            " WHERE account_no = ANY(%b::text[]) ORDER BY account_no, serial, installed_on",
            (accounts,),
        )
        reading_cur = await conn.execute(
            "SELECT account_no, reading_date, meter_serial, source FROM readings"
            " WHERE account_no = ANY(%b::text[]) AND reading_date <= %s ORDER BY account_no, reading_date",
            (accounts, latest),
        )
        figure_cur = await conn.execute(
            "SELECT account_no, service_code, period, opening_balance, accrued, corrections, paid,"
            " closing_balance FROM service_periods WHERE account_no = ANY(%b::text[])"
            " ORDER BY account_no, service_code, period",
            (accounts,),
        )
        entry_cur = await conn.execute(
            "SELECT e.account_no, e.period, e.kind, e.item_id, e.amount, e.entry_date, e.bank, e.reason"
            " FROM unnest(%b::text[], %b::text[]) AS k(a, p) JOIN ledger_entries e ON e.account_no = k.a"
            " AND e.service_code = %s AND e.period = k.p AND e.kind IN ('payment', 'correction')"
            " AND NOT e.reversed ORDER BY e.account_no, e.period, e.entry_date NULLS LAST, e.stream_version",
            ([a for a, _ in period_keys], [p for _, p in period_keys], MAIN_SERVICE),
        )
        tariff_cur = await conn.execute(
            "SELECT effective_from, flat, tier1, tier2, tier3, norms FROM tariff_rows WHERE effective_from <= %s",
            (latest,),
        )
        vat_cur = await conn.execute(
            "SELECT effective_from, rate FROM vat_rates WHERE effective_from <= %s", (latest,)
        )
        office_cur = await conn.execute(
            "SELECT code, name, address, phone, hours FROM district_offices WHERE code IN"
            " (SELECT district_office_code FROM accounts WHERE account_no = ANY(%b::text[]))",
            (accounts,),
        )
        reference_cur = await conn.execute("SELECT key, value FROM reference_texts")

    account_rows = {row[0]: row[1:] for row in await account_cur.fetchall()}
    attributes: dict[str, dict[str, list[AttributeChange]]] = defaultdict(lambda: defaultdict(list))
    for a, name, effective_from, version, value in await attribute_cur.fetchall():
        attributes[a][name].append(AttributeChange(effective_from, int(version), value))
    charges: dict[tuple[str, str], Any] = {
        (a, c): orjson.loads(charge) for a, c, charge in await charge_cur.fetchall()
    }
    meters: dict[str, list[MeterFacts]] = defaultdict(list)
    for a, serial, digits, installed, removed in await meter_cur.fetchall():
        meters[a].append(MeterFacts(serial, int(digits), installed, removed))
    readings: dict[str, list[ReadingFacts]] = defaultdict(list)
    for a, day, serial, source in await reading_cur.fetchall():
        readings[a].append(ReadingFacts(day, serial, source))
    figures: dict[str, dict[str, list[PeriodFigures]]] = defaultdict(lambda: defaultdict(list))
    for a, service, p, o, ac, c, paid, closing in await figure_cur.fetchall():
        figures[a][service].append(PeriodFigures(p, o, ac, c, paid, closing))
    entries: dict[tuple[str, str], list[tuple[Any, ...]]] = defaultdict(list)
    for a, p, *entry in await entry_cur.fetchall():
        entries[(a, p)].append(tuple(entry))
    all_tariffs = [TariffRowFacts(e, f, t1, t2, t3, n) for e, f, t1, t2, t3, n in await tariff_cur.fetchall()]
    all_vat = [VatFacts(e, r) for e, r in await vat_cur.fetchall()]
    offices = {row[0]: OfficeFacts(*row) for row in await office_cur.fetchall()}
    reference = {key: value for key, value in await reference_cur.fetchall()}

    catalog = {  # per period: the tariff rows and VAT rates effective by its last day (shared, read-only)
        period: (
            [t for t in all_tariffs if t.effective_from <= last],
            [v for v in all_vat if v.effective_from <= last],
        )
        for period, last in lasts.items()
    }
    out: list[BillFacts | None] = []
    for (account_no, period, charge_ids), receipt_id in zip(bills, receipt_ids, strict=True):
        account_row = account_rows.get(account_no)
        if account_row is None:
            out.append(None)
            continue
        address, stove, alone, office_code, opened_on = account_row
        last = lasts[period]
        payments: list[PaymentFacts] = []
        corrections: list[CorrectionFacts] = []
        for kind, item_id, amount, entry_date, bank, reason in entries.get((account_no, period), ()):
            if kind == "payment":
                payments.append(PaymentFacts(item_id, entry_date, amount, bank or ""))
            else:
                corrections.append(CorrectionFacts(item_id, amount, reason or ""))
        wanted = set(charge_ids)
        out.append(
            BillFacts(
                receipt_id=receipt_id,
                issued_at=issued_at,
                period=period,
                account=AccountFacts(
                    account_no,
                    address,
                    stove,
                    alone,
                    office_code,
                    opened_on,
                    {name: list(changes) for name, changes in attributes.get(account_no, {}).items()},
                ),
                charges=sorted(
                    (charges[(account_no, c)] for c in wanted if (account_no, c) in charges),
                    key=_charge_order,
                ),
                figures={s: list(rows) for s, rows in figures.get(account_no, {}).items()},
                payments=payments,
                corrections=corrections,
                tariffs=catalog[period][0],
                vat_rates=catalog[period][1],
                meters=list(meters.get(account_no, ())),
                readings=[r for r in readings.get(account_no, ()) if r.reading_date <= last],
                office=offices.get(office_code),
                reference=reference,
            )
        )
    return out


def _charge_order(charge: Mapping[str, Any]) -> tuple[str, str, str]:
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
