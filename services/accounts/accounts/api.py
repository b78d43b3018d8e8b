"""The accounts service's internal HTTP API. Only the gateway (and sibling services) call it.

Account-scoped endpoints authenticate the caller's bearer token (`CurrentUser`) and answer 404 for an
account the caller hasn't linked, whether or not it exists. Field names follow PUBLIC_API.md, so the
gateway passes the bodies through. `/internal/v1/access/...` is for services and the gateway only.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request, Response
from fastapi.responses import JSONResponse
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field, StringConstraints, field_validator
from pydantic_core import PydanticCustomError

from accounts.adapters.district_offices import list_district_offices
from accounts.adapters.rate_limit import LinkAttemptLimiter
from accounts.adapters.read_models import is_linked, linked_account_nos, list_requests, meter_history
from accounts.application.linking import LinkOutcome, link_account, unlink_account
from accounts.application.queries import account_info, user_accounts
from accounts.application.requests import IdempotencyConflict, submit_request
from accounts.domain.errors import NotLinked
from accounts.domain.proof import LinkProof
from accounts.problems import (
    Problem,
    account_not_found,
    install_problem_handlers,
    link_proof_failed,
    too_many_attempts,
)
from accounts.settings import MIGRATIONS_DIR, AccountsSettings
from contracts.events.accounts import RequestCategory
from contracts.types import PositiveMoney
from service_runtime.app import create_service_app, db_pool, resources
from service_runtime.auth import CurrentUser, TokenVerifier
from service_runtime.db import Connection
from service_runtime.eventstore import ConcurrencyError, EventStore

Pool = Annotated[AsyncConnectionPool[Connection], Depends(db_pool)]
router = APIRouter(prefix="/internal/v1")

_ACCOUNT_NO = re.compile(r"[0-9]{10,12}")
LINKED_MESSAGE = "Успешно добавлено"


def _store(request: Request) -> EventStore:
    store: EventStore = request.app.state.store
    return store


Store = Annotated[EventStore, Depends(_store)]


def _limiter(request: Request) -> LinkAttemptLimiter:
    settings: AccountsSettings = request.app.state.accounts_settings
    return LinkAttemptLimiter(
        resources(request).redis,
        max_failures=settings.link_max_failures,
        window_s=settings.link_failure_window_s,
    )


async def _linked_account(account_no: str, user: CurrentUser, pool: Pool) -> str:
    """The path's account, if the caller linked it; 404 otherwise (never 403)."""
    if not _ACCOUNT_NO.fullmatch(account_no):
        raise account_not_found()
    async with pool.connection() as conn:
        if not await is_linked(conn, user.user_id, account_no):
            raise account_not_found()
    return account_no


LinkedAccount = Annotated[str, Depends(_linked_account)]


# --- models ---------------------------------------------------------------------------------------
class _Body(BaseModel):
    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        """NUL (which PostgreSQL refuses in text) and the other C0 controls but tab and line breaks."""
        if isinstance(value, str):
            if any(ord(ch) < 32 and ch not in "\t\n\r" for ch in value):
                raise PydanticCustomError("control_characters", "control characters are not allowed")
            if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
                # A lone surrogate (from a JSON escape) is no character: it can't be encoded or stored.
                raise PydanticCustomError("string_unicode", "not a valid Unicode string")
        return value


# ASCII digits only: contracts' `\d` (a Unicode class) would let "١٢٣٤٥٦٧٨٩٠" through as a number.
AccountNoIn = Annotated[str, StringConstraints(pattern=r"^[0-9]{10,12}$"), Field(examples=["100200300401"])]
PeriodIn = Annotated[
    str, StringConstraints(pattern=r"^(19|20|21)[0-9]{2}-(0[1-9]|1[0-2])$"), Field(examples=["2025-03"])
]


class LinkBody(_Body):
    account_no: AccountNoIn
    last_payment_month: PeriodIn = Field(description="month and year of the last payment, YYYY-MM")
    last_payment_amount: PositiveMoney = Field(description="amount of the last payment, to the tiyn")


class Linked(BaseModel):
    account_no: str
    message: str = Field(examples=[LINKED_MESSAGE])


class AccountSummary(BaseModel):
    account_no: str
    payer_name: str | None
    address: str | None
    balance: str | None = Field(description="always null here: the gateway composes it from the ledger")


class MeterInfo(BaseModel):
    serial: str | None
    digits: int | None
    installed_on: str | None
    replaced_on: str | None = Field(description="date of the last meter replacement, null if never replaced")


class OfficeInfo(BaseModel):
    code: str
    name: str | None
    address: str | None
    phone: str | None
    hours: str | None


class AccountInfo(BaseModel):
    account_no: str
    payer_name: str
    address: str
    residents: int
    tariff_option: str
    electric_stove: bool
    living_alone: bool
    opened_on: str
    meter: MeterInfo
    district_office: OfficeInfo


class MeterHistoryItem(BaseModel):
    serial: str
    digits: int
    installed_on: str
    initial_reading: str
    removed_on: str | None
    final_reading: str | None


class NewRequestBody(_Body):
    category: RequestCategory
    text: Annotated[str, StringConstraints(min_length=1, max_length=4000)] = Field(
        description="stored as given; plain text, never HTML"
    )

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise PydanticCustomError("blank", "text must not be blank")
        return value


class RequestCreated(BaseModel):
    request_id: str
    status: str


class RequestItem(BaseModel):
    request_id: str
    category: str
    text: str
    status: str
    comment: str
    submitted_at: str
    updated_at: str


class Access(BaseModel):
    allowed: bool
    user_id: uuid.UUID
    account_no: str


class UserAccess(BaseModel):
    user_id: uuid.UUID
    account_nos: list[str]


# --- accounts ---------------------------------------------------------------------------------------
@router.get("/accounts", response_model=list[AccountSummary])
async def my_accounts(user: CurrentUser, pool: Pool, store: Store) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        return await user_accounts(conn, store, user.user_id)


@router.post(
    "/accounts",
    status_code=201,
    response_model=Linked,
    responses={422: {"description": "the proof doesn't match (one generic answer)"}, 429: {}},
)
async def link(body: LinkBody, user: CurrentUser, request: Request, pool: Pool, store: Store) -> Linked:
    proof = LinkProof(body.account_no, body.last_payment_month, body.last_payment_amount)
    try:
        result = await link_account(pool, store, _limiter(request), user.user_id, proof)
    except ConcurrencyError as exc:
        raise _busy() from exc
    if result.outcome is LinkOutcome.RATE_LIMITED:
        raise too_many_attempts(result.retry_after or 1)
    if result.outcome is LinkOutcome.NOT_PROVEN:
        raise link_proof_failed()
    return Linked(account_no=body.account_no, message=LINKED_MESSAGE)


@router.get("/accounts/{account_no}", response_model=AccountInfo)
async def account(account_no: LinkedAccount, pool: Pool, store: Store) -> dict[str, Any]:
    async with pool.connection() as conn:
        info = await account_info(conn, store, account_no)
    if info is None:
        raise account_not_found()
    return info


@router.delete("/accounts/{account_no}", status_code=204)
async def unlink(account_no: LinkedAccount, user: CurrentUser, pool: Pool, store: Store) -> Response:
    try:
        await unlink_account(pool, store, user.user_id, account_no)
    except NotLinked as exc:
        raise account_not_found() from exc
    except ConcurrencyError as exc:
        raise _busy() from exc
    return Response(status_code=204)


@router.get("/accounts/{account_no}/meters", response_model=list[MeterHistoryItem])
async def meters(account_no: LinkedAccount, pool: Pool) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        return await meter_history(conn, account_no)


@router.get("/accounts/{account_no}/requests", response_model=list[RequestItem])
async def requests(account_no: LinkedAccount, user: CurrentUser, pool: Pool) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        return await list_requests(conn, user.user_id, account_no)


@router.post("/accounts/{account_no}/requests", status_code=201, response_model=RequestCreated)
async def new_request(
    account_no: LinkedAccount,
    body: NewRequestBody,
    user: CurrentUser,
    pool: Pool,
    store: Store,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> RequestCreated:
    try:
        submitted = await submit_request(
            pool,
            store,
            user_id=user.user_id,
            account_no=account_no,
            category=body.category,
            text=body.text,
            idempotency_key=idempotency_key,
        )
    except IdempotencyConflict as exc:
        raise Problem(
            409,
            "idempotency_key_reused",
            "Повторный ключ запроса",
            "Этот Idempotency-Key уже использован для другой заявки.",
        ) from exc
    return RequestCreated(request_id=submitted.request_id, status=submitted.status)


# --- authorization source of truth (services and the gateway) -----------------------------------------
@router.get("/access/{user_id}/{account_no}", response_model=Access, responses={404: {}})
async def access(user_id: str, account_no: str, pool: Pool) -> JSONResponse:
    """200 `{allowed: true}` when the user linked the account; 404 otherwise."""
    user = _uuid_or_none(user_id)
    if user is None or not _ACCOUNT_NO.fullmatch(account_no):
        raise account_not_found()
    async with pool.connection() as conn:
        if not await is_linked(conn, user, account_no):
            raise account_not_found()
    return JSONResponse({"allowed": True, "user_id": str(user), "account_no": account_no})


@router.get("/access/{user_id}", response_model=UserAccess)
async def user_access(user_id: str, pool: Pool) -> UserAccess:
    """The accounts the user linked (an unknown user has none)."""
    user = _uuid_or_none(user_id)
    if user is None:
        raise Problem(404, "not_found", "Не найдено", "Пользователь не найден.")
    async with pool.connection() as conn:
        return UserAccess(user_id=user, account_nos=await linked_account_nos(conn, user))


# --- reference ------------------------------------------------------------------------------------
@router.get("/district-offices")
async def district_offices(pool: Pool) -> list[dict[str, str]]:
    async with pool.connection() as conn:
        return await list_district_offices(conn)


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _busy() -> Problem:
    return Problem(
        503,
        "busy",
        "Повторите попытку",
        "Счёт сейчас изменяется. Повторите попытку.",
        headers={"Retry-After": "1"},
    )


def create_app(settings: AccountsSettings) -> FastAPI:
    def configure(app: FastAPI) -> None:
        app.state.accounts_settings = settings
        app.state.token_verifier = TokenVerifier(settings.jwks_url)
        app.state.store = EventStore(producer="accounts")
        install_problem_handlers(app)
        app.include_router(router)

    return create_service_app(
        settings, title="accounts (internal)", migrations_dir=MIGRATIONS_DIR, configure=configure
    )


app = create_app(AccountsSettings())
