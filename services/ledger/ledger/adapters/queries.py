"""Read-side queries of the internal API (read models only; never the event store)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from uuid import UUID

from ledger.adapters.projections import period_row
from ledger.domain.period import Period
from ledger.domain.periods import PeriodRow
from service_runtime.db import Connection


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    service_code: str
    name: str
    supplier: str
    supplier_address: str = ""
    supplier_phone: str = ""
    supplier_email: str = ""
    supplier_website: str = ""


@dataclass(frozen=True, slots=True)
class StreamSummary:
    service: ServiceInfo
    first_period: Period
    last_period: Period
    balance: Decimal


@dataclass(frozen=True, slots=True)
class PaymentRow:
    service_code: str
    payment_id: str
    paid_on: date
    amount: Decimal
    bank: str


_SERVICE_COLUMNS = "name, supplier, supplier_address, supplier_phone, supplier_email, supplier_website"


async def is_linked(conn: Connection, account_no: str, user_id: UUID) -> bool:
    cur = await conn.execute(
        "SELECT 1 FROM ledger_account_links WHERE account_no = %s AND user_id = %s", (account_no, user_id)
    )
    return await cur.fetchone() is not None


def _service(service_code: str, row: tuple[str | None, ...] | None) -> ServiceInfo:
    """The reference row, or the code itself for a service the reference does not list yet."""
    if row is None or row[0] is None:
        return ServiceInfo(service_code, service_code, "")
    name, supplier, address, phone, email, website = (str(v) for v in row)
    return ServiceInfo(service_code, name, supplier, address, phone, email, website)


async def service_info(conn: Connection, service_code: str) -> ServiceInfo | None:
    cur = await conn.execute(
        f"SELECT {_SERVICE_COLUMNS} FROM ledger_services WHERE service_code = %s",  # noqa: S608 (constant)
        (service_code,),
    )
    row = await cur.fetchone()
    return _service(service_code, row) if row is not None else None


async def streams_of(
    conn: Connection, account_no: str, service_code: str | None = None
) -> list[StreamSummary]:
    """The account's services that have money on them, by service code."""
    cur = await conn.execute(
        f"SELECT s.service_code, s.first_period, s.last_period, s.balance, {_SERVICE_COLUMNS}"  # noqa: S608
        " FROM ledger_period_streams AS s LEFT JOIN ledger_services AS r USING (service_code)"
        " WHERE s.account_no = %s AND (%s::text IS NULL OR s.service_code = %s) ORDER BY s.service_code",
        (account_no, service_code, service_code),
    )
    return [
        StreamSummary(_service(code, tuple(rest)), Period.parse(first), Period.parse(last), balance)
        for code, first, last, balance, *rest in await cur.fetchall()
    ]


async def period_rows(
    conn: Connection, account_no: str, first: Period, last: Period, service_code: str | None = None
) -> dict[str, list[PeriodRow]]:
    """The stored period rows with first <= period <= last, per service, by month."""
    cur = await conn.execute(
        "SELECT service_code, period, opening_balance, accrued, corrections, paid, closing_balance, tariff"
        " FROM ledger_periods WHERE account_no = %s AND period BETWEEN %s AND %s"
        " AND (%s::text IS NULL OR service_code = %s) ORDER BY service_code, period",
        (account_no, str(first), str(last), service_code, service_code),
    )
    rows: dict[str, list[PeriodRow]] = {}
    for record in await cur.fetchall():
        rows.setdefault(record[0], []).append(period_row(record[1:]))
    return rows


async def payments(conn: Connection, account_no: str, first: date, last: date) -> list[PaymentRow]:
    """Payments received (not reversed) with first <= paid_on <= last, by date."""
    cur = await conn.execute(
        "SELECT service_code, payment_id, paid_on, amount, bank FROM ledger_payments"
        " WHERE account_no = %s AND paid_on BETWEEN %s AND %s AND NOT reversed"
        " ORDER BY paid_on, payment_id",
        (account_no, first, last),
    )
    return [PaymentRow(*row) for row in await cur.fetchall()]
