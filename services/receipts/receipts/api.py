"""The receipts service's internal HTTP API (monthly bills and e-bills). Only the gateway calls it.

Every endpoint is account-scoped: it authenticates the caller's bearer token (`CurrentUser`) and answers
404 for an account the caller hasn't linked (receipts' own projection of AccountLinked/AccountUnlinked),
whether or not it exists. Field names follow PUBLIC_API.md, so the gateway passes bodies through.

    GET    /internal/v1/accounts/{no}/receipts?from=YYYY-MM&to=YYYY-MM   → [{period, amount_due, due_date, issued_at}]
    GET    /internal/v1/accounts/{no}/receipts/{period}                  → the bill's data, front and back
    GET    /internal/v1/accounts/{no}/receipts/{period}.pdf              → the two-page PDF (attachment)
    GET    /internal/v1/accounts/{no}/receipts/{period}/html?side=front|back → printable HTML page of one side
    PUT    /internal/v1/accounts/{no}/ebill {email, language?}           → 200 the subscription
    DELETE /internal/v1/accounts/{no}/ebill                              → 204
    GET    /internal/v1/accounts/{no}/ebill                              → [the caller's subscription]
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.responses import HTMLResponse
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field

from contracts.events.receipts import Email, Language
from contracts.money import Money
from receipts.adapters import read_models, rendering
from receipts.adapters.pdfs import pdf_for
from receipts.adapters.rendering import TEMPLATE_VERSION, render_html
from receipts.application import ebills
from receipts.domain import periods
from receipts.problems import Problem, account_not_found, install_problem_handlers, receipt_not_found
from receipts.settings import MIGRATIONS_DIR, ReceiptsSettings
from service_runtime.app import create_service_app, db_pool
from service_runtime.auth import CurrentUser, TokenVerifier
from service_runtime.db import Connection
from service_runtime.eventstore import ConcurrencyError, EventStore

Pool = Annotated[AsyncConnectionPool[Connection], Depends(db_pool)]
router = APIRouter(prefix="/internal/v1")

_ACCOUNT_NO = re.compile(r"\d{10,12}")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _store(request: Request) -> EventStore:
    store: EventStore = request.app.state.store
    return store


Store = Annotated[EventStore, Depends(_store)]


async def _linked_account(account_no: str, user: CurrentUser, pool: Pool) -> str:
    """The path's account, if the caller linked it; 404 otherwise (never 403)."""
    if not _ACCOUNT_NO.fullmatch(account_no):
        raise account_not_found()
    async with pool.connection() as conn:
        if not await read_models.is_linked(conn, user.user_id, account_no):
            raise account_not_found()
    return account_no


LinkedAccount = Annotated[str, Depends(_linked_account)]


def _period(value: str, field: str = "period") -> str:
    if not periods.is_period(value):
        raise Problem(
            422,
            "validation_error",
            "Ошибка в данных запроса",
            "Проверьте заполнение полей.",
            errors=[{"field": field, "message": "Период в формате ГГГГ-ММ"}],
        )
    return value


# --- models ---------------------------------------------------------------------------------------
class ReceiptSummary(BaseModel):
    period: str = Field(examples=["2025-03"])
    amount_due: Money
    due_date: date
    issued_at: datetime


class EBillBody(BaseModel):
    email: Email = Field(examples=["aigul@example.kz"])
    language: Language = Field("ru", description="language of the e-mail text (the bill itself is Russian)")


class EBillSubscription(BaseModel):
    account_no: str
    email: str
    language: str
    subscribed: bool = True
    subscribed_at: datetime


_BILL_EXAMPLE = {
    "account_no": "100200300401",
    "period": "2025-03",
    "amount_due": "5042.36",
    "overpayment": "0.00",
    "due_date": "2025-04-25",
    "content_hash": "…",
    "front": {"supplier": {}, "account": {}, "meter": {}, "charges": [], "money": {}, "qr": {}},
    "back": {"tariffs": [], "norms": [], "debts": [], "district_office": {}, "notices": []},
}


# --- receipts ---------------------------------------------------------------------------------------
@router.get("/accounts/{account_no}/receipts", response_model=list[ReceiptSummary])
async def receipts(
    account_no: LinkedAccount,
    pool: Pool,
    from_: Annotated[str | None, Query(alias="from", examples=["2025-01"])] = None,
    to: Annotated[str | None, Query(examples=["2025-12"])] = None,
) -> list[dict[str, Any]]:
    """The account's bills, newest first, optionally within `from`..`to` (periods, both included)."""
    first = _period(from_, "from") if from_ else None
    last = _period(to, "to") if to else None
    async with pool.connection() as conn:
        return await read_models.list_receipts(conn, account_no, first, last)


@router.get(
    "/accounts/{account_no}/receipts/{period}.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "two pages: front, back"}, 404: {}},
)
async def receipt_pdf(account_no: LinkedAccount, period: str, pool: Pool) -> Response:
    _period(period)
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT r.receipt_id, r.content_hash, p.pdf FROM receipts r LEFT JOIN receipt_pdfs p"
            " ON p.receipt_id = r.receipt_id AND p.template_version = %s"
            " WHERE r.account_no = %s AND r.period = %s",
            (TEMPLATE_VERSION, account_no, period),
        )
        row = await cur.fetchone()
        if row is None:
            raise receipt_not_found()
        receipt_id, digest, pdf = row
        if pdf is None:
            snapshot = await read_models.snapshot_by_id(conn, receipt_id)
    if pdf is None:
        assert snapshot is not None
        pdf = await pdf_for(pool, receipt_id, snapshot)
    return Response(
        bytes(pdf),
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="kvitanciya_{account_no}_{period}.pdf"',
            "ETag": f'"{digest[:32]}-t{TEMPLATE_VERSION}"',
            "Cache-Control": "private, max-age=86400",
        },
    )


@router.get(
    "/accounts/{account_no}/receipts/{period}/html",
    response_class=HTMLResponse,
    responses={404: {}},
)
async def receipt_html(
    account_no: LinkedAccount,
    period: str,
    pool: Pool,
    side: Annotated[
        Literal["front", "back"], Query(description="«Квитанция» or «Оборотная сторона счета»")
    ] = "front",
) -> HTMLResponse:
    """One side of the bill as a standalone, print-styled HTML page (the portal's «Просмотр»)."""
    _period(period)
    async with pool.connection() as conn:
        found = await read_models.receipt_snapshot(conn, account_no, period)
    if found is None:
        raise receipt_not_found()
    return HTMLResponse(render_html(found[0], [side]))


@router.get(
    "/accounts/{account_no}/receipts/{period}",
    response_class=Response,
    responses={200: {"content": {"application/json": {"example": _BILL_EXAMPLE}}}, 404: {}},
)
async def receipt(account_no: LinkedAccount, period: str, pool: Pool) -> Response:
    """The bill's data as issued (its frozen snapshot), front and back, with its content hash."""
    _period(period)
    async with pool.connection() as conn:
        found = await read_models.receipt_snapshot(conn, account_no, period)
    if found is None:
        raise receipt_not_found()
    snapshot, digest = found
    return Response(orjson.dumps({**snapshot, "content_hash": digest}), media_type="application/json")


# --- e-bills ----------------------------------------------------------------------------------------
@router.put("/accounts/{account_no}/ebill", response_model=EBillSubscription)
async def subscribe(
    account_no: LinkedAccount, body: EBillBody, user: CurrentUser, pool: Pool, store: Store
) -> EBillSubscription:
    """Subscribe the caller to e-bills of the account at `email` (replacing the caller's earlier address)."""
    if not _EMAIL.fullmatch(body.email.strip()):
        raise Problem(
            422,
            "validation_error",
            "Ошибка в данных запроса",
            "Проверьте заполнение полей.",
            errors=[{"field": "email", "message": "Некорректный адрес электронной почты"}],
        )
    try:
        sub = await ebills.subscribe(pool, store, account_no, user.user_id, body.email, body.language)
    except ConcurrencyError as exc:
        raise _busy() from exc
    return EBillSubscription(
        account_no=account_no, email=sub.email, language=sub.language, subscribed_at=sub.subscribed_at
    )


@router.delete("/accounts/{account_no}/ebill", status_code=204)
async def unsubscribe(account_no: LinkedAccount, user: CurrentUser, pool: Pool, store: Store) -> Response:
    """End the caller's e-bill subscription for the account (204 also when there was none)."""
    try:
        await ebills.unsubscribe(pool, store, account_no, user.user_id)
    except ConcurrencyError as exc:
        raise _busy() from exc
    return Response(status_code=204)


@router.get("/accounts/{account_no}/ebill", response_model=list[EBillSubscription])
async def my_subscriptions(
    account_no: LinkedAccount, user: CurrentUser, pool: Pool
) -> list[EBillSubscription]:
    async with pool.connection() as conn:
        subs = await ebills.subscriptions(conn, account_no, user.user_id)
    return [
        EBillSubscription(
            account_no=account_no, email=s.email, language=s.language, subscribed_at=s.subscribed_at
        )
        for s in subs
    ]


def _busy() -> Problem:
    return Problem(
        503,
        "busy",
        "Повторите попытку",
        "Подписка сейчас изменяется. Повторите попытку.",
        headers={"Retry-After": "1"},
    )


def create_app(settings: ReceiptsSettings) -> FastAPI:
    def configure(app: FastAPI) -> None:
        rendering.configure(rendering.config_from(settings))  # on-demand renders (a lazy Chromium)
        _close_engine_on_shutdown(app)
        app.state.receipts_settings = settings
        app.state.token_verifier = TokenVerifier(settings.jwks_url)
        app.state.store = EventStore(producer="receipts")
        install_problem_handlers(app)
        app.include_router(router)

    return create_service_app(
        settings, title="receipts (internal)", migrations_dir=MIGRATIONS_DIR, configure=configure
    )


def _close_engine_on_shutdown(app: FastAPI) -> None:
    """Close the process's Chromium (if one was started) when the app shuts down."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        async with inner(app) as state:
            try:
                yield state
            finally:
                await asyncio.to_thread(rendering.close_engine)

    app.router.lifespan_context = lifespan


app = create_app(ReceiptsSettings())
