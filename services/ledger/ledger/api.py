"""The ledger service's internal HTTP API (money per account, service and period). Only the gateway calls it.

Every endpoint is account-scoped: the caller's bearer token (identity's EdDSA JWT) is verified locally,
and the account must be linked to the caller in the ledger's own projection of AccountLinked /
AccountUnlinked; otherwise 404, never 403. Field names are PUBLIC_API.md's, so the gateway passes the
bodies through; money is a string with two decimals. Errors are application/problem+json.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Response
from fastapi.responses import HTMLResponse
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field

from contracts.money import Money
from ledger.adapters import queries as read
from ledger.application import queries
from ledger.application.queries import InvalidQuery
from ledger.domain.period import Period
from ledger.domain.periods import PeriodRow
from ledger.problems import (
    MEDIA_TYPE,
    ApiProblem,
    account_not_found,
    install_problem_handlers,
    validation_problem,
)
from ledger.settings import MIGRATIONS_DIR, LedgerSettings
from ledger.statement import render_html, render_pdf
from service_runtime.app import create_service_app, db_pool
from service_runtime.auth import CurrentUser, TokenVerifier
from service_runtime.db import Connection

Pool = Annotated[AsyncConnectionPool[Connection], Depends(db_pool)]
ACCOUNT_NO = re.compile(r"^\d{10,12}$")
SERVICE_CODE = re.compile(r"^[a-z][a-z0-9_]{1,39}$")

_PROBLEM = {"content": {MEDIA_TYPE: {}}, "description": "application/problem+json"}
PROBLEMS: dict[int | str, dict[str, object]] = {
    401: {**_PROBLEM, "description": "Нет действительного токена"},
    404: {**_PROBLEM, "description": "Счёт не привязан к пользователю (или не существует)"},
    422: {**_PROBLEM, "description": "Некорректные параметры фильтра"},
}

router = APIRouter(prefix="/internal/v1", responses=PROBLEMS)


# --- response models ------------------------------------------------------------------------------


class PeriodOut(BaseModel):
    period: str = Field(examples=["2025-03"])
    opening_balance: Money
    accrued: Money
    corrections: Money
    paid: Money
    closing_balance: Money


class StatementRowOut(PeriodOut):
    tariff: str | None = Field(examples=["31.85 ₸/кВт·ч", "дифф.: 28.95/38.22/47.77 ₸/кВт·ч"])


class ServiceOut(BaseModel):
    service_code: str = Field(examples=["electricity"])
    service_name: str = Field(examples=["Электроэнергия"])
    supplier: str = Field(examples=["АО «АлматыЭнергоСбыт»"])
    balance: Money = Field(description="The current balance of the service (positive: owed)")
    periods: list[PeriodOut]


class SupplierContacts(BaseModel):
    address: str
    phone: str
    email: str
    website: str


class StatementTotals(BaseModel):
    accrued: Money
    corrections: Money
    paid: Money


class StatementOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    account_no: str
    service_code: str
    service_name: str
    supplier: str
    supplier_contacts: SupplierContacts
    period_from: str = Field(alias="from", examples=["2025-01"])
    period_to: str = Field(alias="to", examples=["2025-12"])
    opening_balance: Money
    closing_balance: Money
    totals: StatementTotals
    rows: list[StatementRowOut]


class PaymentOut(BaseModel):
    payment_id: str
    date: date
    amount: Money
    bank: str
    service_code: str


class ServiceBalanceOut(BaseModel):
    service_code: str
    balance: Money


class BalanceOut(BaseModel):
    account_no: str
    balance: Money = Field(description="Sum over the account's services; positive when the customer owes")
    services: list[ServiceBalanceOut]


# --- dependencies ---------------------------------------------------------------------------------


async def linked_account(account_no: str, user: CurrentUser, pool: Pool) -> str:
    """The path's account, if the caller linked it; 404 otherwise (whether or not it exists)."""
    if not ACCOUNT_NO.fullmatch(account_no):
        raise account_not_found()
    async with pool.connection() as conn:
        if not await read.is_linked(conn, account_no, user.user_id):
            raise account_not_found()
    return account_no


LinkedAccount = Annotated[str, Depends(linked_account)]
FromParam = Annotated[str | None, Query(alias="from", description="С (включительно)")]
ToParam = Annotated[str | None, Query(alias="to", description="По (включительно)")]


def _invalid(exc: InvalidQuery) -> ApiProblem:
    return validation_problem([{"field": f, "message": m} for f, m in exc.errors], exc.code)


def _months(from_: str | None, to: str | None) -> tuple[Period, Period]:
    try:
        return queries.period_range(from_, to, current=Period.of_date(queries.today()))
    except InvalidQuery as exc:
        raise _invalid(exc) from exc


def _period_out(row: PeriodRow) -> PeriodOut:
    return PeriodOut(
        period=str(row.period),
        opening_balance=row.opening_balance,
        accrued=row.accrued,
        corrections=row.corrections,
        paid=row.paid,
        closing_balance=row.closing_balance,
    )


# --- endpoints ------------------------------------------------------------------------------------


@router.get("/accounts/{account_no}/services", response_model=list[ServiceOut])
async def account_services(
    account_no: LinkedAccount, pool: Pool, from_: FromParam = None, to: ToParam = None
) -> list[ServiceOut]:
    """«Информация по услугам»: per service, per month from `from` to `to` (YYYY-MM; default: the last
    twelve months)."""
    first, last = _months(from_, to)
    async with pool.connection() as conn:
        found = await queries.services(conn, account_no, first, last)
    return [
        ServiceOut(
            service_code=s.service.service_code,
            service_name=s.service.name,
            supplier=s.service.supplier,
            balance=s.balance,
            periods=[_period_out(row) for row in s.rows],
        )
        for s in found
    ]


@router.get(
    "/accounts/{account_no}/services/{service_code}/statement",
    response_model=StatementOut,
    responses={
        200: {
            "content": {"application/pdf": {}, "text/html": {}},
            "description": "JSON; `format=pdf` the printable PDF, `format=html` the print-styled page",
        }
    },
)
async def service_statement(
    account_no: LinkedAccount,
    service_code: str,
    pool: Pool,
    from_: FromParam = None,
    to: ToParam = None,
    format: Annotated[Literal["json", "html", "pdf"], Query()] = "json",
) -> Response | StatementOut:
    """«Выписка по услуге»: service name and supplier, then per month the tariff, opening balance,
    accrued, corrections, paid and closing balance."""
    first, last = _months(from_, to)
    if not SERVICE_CODE.fullmatch(service_code):
        raise ApiProblem(404, "service_not_found", "Услуга не найдена", "Такой услуги нет у лицевого счёта")
    async with pool.connection() as conn:
        statement = await queries.statement(conn, account_no, service_code, first, last)
    if statement is None:
        raise ApiProblem(404, "service_not_found", "Услуга не найдена", "Такой услуги нет у лицевого счёта")
    if format == "html":
        return HTMLResponse(render_html(statement))
    if format == "pdf":
        filename = f"statement-{account_no}-{service_code}-{first}-{last}.pdf"
        return Response(
            await render_pdf(statement),
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="{filename}"'},
        )
    service = statement.service
    return StatementOut(
        account_no=account_no,
        service_code=service.service_code,
        service_name=service.name,
        supplier=service.supplier,
        supplier_contacts=SupplierContacts(
            address=service.supplier_address,
            phone=service.supplier_phone,
            email=service.supplier_email,
            website=service.supplier_website,
        ),
        period_from=str(first),
        period_to=str(last),
        opening_balance=statement.opening_balance,
        closing_balance=statement.closing_balance,
        totals=StatementTotals(**statement.totals),
        rows=[StatementRowOut(**_period_out(row).model_dump(), tariff=row.tariff) for row in statement.rows],
    )


@router.get("/accounts/{account_no}/payments", response_model=list[PaymentOut])
async def account_payments(
    account_no: LinkedAccount, pool: Pool, from_: FromParam = None, to: ToParam = None
) -> list[PaymentOut]:
    """«Платежи»: payments received from `from` to `to` (YYYY-MM-DD; default: the last year), by date.
    A cancelled payment is not listed."""
    try:
        first, last = queries.date_range(from_, to, current=queries.today())
    except InvalidQuery as exc:
        raise _invalid(exc) from exc
    async with pool.connection() as conn:
        rows = await read.payments(conn, account_no, first, last)
    return [
        PaymentOut(
            payment_id=p.payment_id, date=p.paid_on, amount=p.amount, bank=p.bank, service_code=p.service_code
        )
        for p in rows
    ]


@router.get("/accounts/{account_no}/balance", response_model=BalanceOut)
async def account_balance(account_no: LinkedAccount, pool: Pool) -> BalanceOut:
    """The account's current balance (for the gateway's account list), and per service."""
    async with pool.connection() as conn:
        found = await queries.balance(conn, account_no)
    return BalanceOut(
        account_no=account_no,
        balance=found.balance,
        services=[ServiceBalanceOut(service_code=c, balance=b) for c, b in found.services],
    )


def create_app(settings: LedgerSettings) -> FastAPI:
    def configure(app: FastAPI) -> None:
        app.state.token_verifier = TokenVerifier(settings.jwks_url)
        install_problem_handlers(app)
        app.include_router(router)

    return create_service_app(
        settings, title="ledger (internal)", migrations_dir=MIGRATIONS_DIR, configure=configure
    )


app = create_app(LedgerSettings())
