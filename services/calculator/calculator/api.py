"""The calculator service's internal HTTP API (tariffs, readings, rating). Only the gateway calls it.

Account-scoped endpoints authenticate the caller's bearer token (`CurrentUser`) and authorize from
calculator's own projection of AccountLinked/AccountUnlinked: an account the caller hasn't linked is a
404. Errors are `application/problem+json` with a stable `code` and a Russian `detail`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from calculator.adapters.accounts import is_linked
from calculator.adapters.catalog import catalog_to_api
from calculator.adapters.own_events import load_readings
from calculator.application.queries import (
    AccountNotReady,
    consumption_by_month,
    result_to_api,
    tariff_comparison,
    what_if,
)
from calculator.application.readings import (
    Accepted,
    Conflict,
    NotReady,
    Rejected,
    submit_reading,
    today_in_almaty,
)
from calculator.domain.billing import period_of
from calculator.domain.errors import RatingError
from calculator.domain.rating import AccountAttributes, MeterReading, rate
from calculator.domain.readings import ReadingProblem
from calculator.settings import MIGRATIONS_DIR, CalculatorSettings
from calculator.worker import Components
from contracts.money import format_money
from service_runtime.app import create_service_app, db_pool
from service_runtime.auth import AuthenticatedUser, CurrentUser, TokenVerifier
from service_runtime.db import Connection

Pool = Annotated[AsyncConnectionPool[Connection], Depends(db_pool)]
router = APIRouter(prefix="/internal/v1")

PROBLEM = "application/problem+json"
_ACCOUNT_NO = re.compile(r"^\d{10,12}$")

FIELD_OF_CODE = {
    "date_in_future": "reading_date",
    "not_after_previous": "reading_date",
    "before_meter_install": "reading_date",
    "implausible_consumption": "confirm_implausible",
}
TITLES = {
    400: "Некорректный запрос",
    401: "Требуется вход",
    404: "Не найдено",
    409: "Конфликт",
    422: "Показание не принято",
}


class Problem(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        errors: list[dict[str, str]] | None = None,
        title: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.errors, self.title = (
            status,
            code,
            detail,
            errors or [],
            title,
        )


def problem_response(
    status: int,
    code: str,
    detail: str,
    errors: list[dict[str, str]] | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {
            "type": f"urn:lk:problem:{code}",
            "title": title or TITLES.get(status, "Ошибка"),
            "status": status,
            "detail": detail,
            "code": code,
            "errors": errors or [],
        },
        status_code=status,
        media_type=PROBLEM,
        headers=headers,
    )


def problems_to_error(problems: list[ReadingProblem], *, what_if_fields: bool = False) -> Problem:
    errors = [
        {
            "field": FIELD_OF_CODE.get(p.code, "reading_value" if what_if_fields else "value"),
            "code": p.code,
            "message": p.message_ru,
        }
        for p in problems
    ]
    first = problems[0]
    title = "Подтвердите показание" if first.code == "implausible_consumption" else None
    return Problem(422, first.code, "; ".join(e["message"] for e in errors), errors, title)


def rating_error(error: RatingError, *, field: str = "value") -> Problem:
    return Problem(
        422,
        error.code,
        error.message_ru,
        [{"field": FIELD_OF_CODE.get(error.code, field), "code": error.code, "message": error.message_ru}],
        "Расчёт невозможен",
    )


def parse_value(raw: Any, field: str) -> Decimal:
    """A reading value from JSON: a decimal string or a number (read back from its shortest repr)."""
    if isinstance(raw, bool) or raw is None:
        raise rating_error(RatingError("not_a_number"), field=field)
    try:
        value = Decimal(str(raw).strip().replace(",", "."))
    except InvalidOperation:
        raise rating_error(RatingError("not_a_number"), field=field) from None
    if not value.is_finite():
        raise rating_error(RatingError("not_a_number"), field=field)
    return value


async def authorize(pool: AsyncConnectionPool[Connection], user: AuthenticatedUser, account_no: str) -> None:
    if not _ACCOUNT_NO.match(account_no):
        raise Problem(404, "account_not_found", "Лицевой счёт не найден")
    async with pool.connection() as conn:
        if not await is_linked(conn, account_no, user.user_id):
            raise Problem(404, "account_not_found", "Лицевой счёт не найден")


def components(request: Request) -> Components:
    c: Components = request.app.state.components
    return c


Parts = Annotated[Components, Depends(components)]


# --- models ---------------------------------------------------------------------------------------


class ReadingIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"reading_date": "2025-10-31", "value": "12345.60", "confirm_implausible": False}]
        }
    )

    reading_date: dt.date
    value: str | int | float = Field(
        description="the meter's reading, kWh, at most two decimals (a string preferred)"
    )
    confirm_implausible: bool = False


# The what-if calculation may look ahead to the next bill, not decades (rating cost grows with days).
WHAT_IF_HORIZON_DAYS = 62


class CalculationIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"reading_date": "2025-10-31", "reading_value": "12345.60"}]}
    )

    reading_date: dt.date
    reading_value: str | int | float


class PointIn(BaseModel):
    date: dt.date
    value: str | int | float


class QuoteIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "tariff_option": "tiered",
                    "residents": 2,
                    "electric_stove": False,
                    "living_alone": False,
                    "meter_digits": 6,
                    "previous": {"date": "2025-09-30", "value": "1000.00"},
                    "current": {"date": "2025-10-31", "value": "1250.00"},
                }
            ]
        }
    )

    tariff_option: Literal["flat", "tiered"]
    residents: int = Field(ge=0, le=100)
    electric_stove: bool = False
    living_alone: bool = False
    meter_digits: int = Field(6, ge=1, le=12)
    previous: PointIn
    current: PointIn


# --- public endpoints ------------------------------------------------------------------------------


@router.get("/tariffs", summary="The tariff catalog and VAT rates with their effective dates")
async def get_tariffs(pool: Pool, parts: Parts) -> dict[str, Any]:
    async with pool.connection() as conn:
        return catalog_to_api(await parts.catalog.load(conn))


@router.post("/tariffs/quote", summary="Rate explicit readings and household parameters (no login)")
async def quote(body: QuoteIn, pool: Pool, parts: Parts) -> dict[str, Any]:
    previous = MeterReading(body.previous.date, parse_value(body.previous.value, "previous.value"))
    current = MeterReading(body.current.date, parse_value(body.current.value, "current.value"))
    try:
        attrs = AccountAttributes(
            body.tariff_option, body.residents, body.electric_stove, body.living_alone, body.meter_digits
        )
        async with pool.connection() as conn:
            catalog = await parts.catalog.load(conn)
        return result_to_api(rate(previous, current, attrs, catalog))
    except RatingError as error:
        raise rating_error(error, field="current.value") from None


# --- account endpoints -----------------------------------------------------------------------------


@router.get("/accounts/{account_no}/readings", summary="The account's accepted readings")
async def list_readings(account_no: str, user: CurrentUser, pool: Pool) -> list[dict[str, Any]]:
    await authorize(pool, user, account_no)
    async with pool.connection() as conn:
        readings = await load_readings(conn, account_no)
    return [
        {
            "reading_id": r.reading_id,
            "reading_date": r.reading_date.isoformat(),
            "value": format_money(r.value),
            "source": r.source,
            "consumption": format_money(r.consumption_kwh) if r.consumption_kwh is not None else None,
            "meter_serial": r.meter_serial,
        }
        for r in readings
    ]


@router.post("/accounts/{account_no}/readings", status_code=201, summary="Submit a meter reading")
async def post_reading(
    account_no: str, body: ReadingIn, user: CurrentUser, pool: Pool, parts: Parts
) -> JSONResponse:
    await authorize(pool, user, account_no)
    value = parse_value(body.value, "value")
    try:
        async with pool.connection() as conn:
            outcome = await submit_reading(
                conn,
                parts.own,
                account_no=account_no,
                reading_date=body.reading_date,
                value=value,
                source="customer",
                confirm_implausible=body.confirm_implausible,
            )
    except Conflict:
        raise Problem(
            409,
            "reading_conflict",
            "Показания по лицевому счёту изменились во время обработки; повторите попытку",
        ) from None
    if isinstance(outcome, Rejected):
        raise problems_to_error(outcome.problems)
    if isinstance(outcome, NotReady):
        raise Problem(
            409, "no_meter", "На лицевом счёте не зарегистрирован счётчик; обратитесь в контакт-центр"
        )
    assert isinstance(outcome, Accepted)
    r = outcome.reading
    return JSONResponse(
        {
            "reading_id": r.reading_id,
            "account_no": account_no,
            "reading_date": r.reading_date.isoformat(),
            "value": format_money(r.value),
            "source": r.source,
            "consumption": format_money(outcome.consumption_kwh),
            "previous": (
                {"date": outcome.previous.date.isoformat(), "value": format_money(outcome.previous.value)}
                if outcome.previous
                else None
            ),
            "confirmed_implausible": r.confirmed_implausible,
            "period": period_of(r.reading_date),
            "message": "Показание принято",
        },
        status_code=201,
    )


@router.post(
    "/accounts/{account_no}/calculation", summary="What-if: rate a reading from the last recorded one"
)
async def calculation(
    account_no: str, body: CalculationIn, user: CurrentUser, pool: Pool, parts: Parts
) -> dict[str, Any]:
    await authorize(pool, user, account_no)
    value = parse_value(body.reading_value, "reading_value")
    latest = today_in_almaty() + dt.timedelta(days=WHAT_IF_HORIZON_DAYS)
    if body.reading_date > latest:
        raise rating_error(RatingError("date_in_future", reading_date=body.reading_date.isoformat()))
    try:
        async with pool.connection() as conn:
            catalog = await parts.catalog.load(conn)
            result = await what_if(conn, catalog, account_no, body.reading_date, value)
    except RatingError as error:
        raise rating_error(error, field="reading_value") from None
    except AccountNotReady:
        raise Problem(
            409, "no_meter", "На лицевом счёте не зарегистрирован счётчик; обратитесь в контакт-центр"
        ) from None
    return result_to_api(result)


@router.get(
    "/accounts/{account_no}/tariff-comparison", summary="Flat vs tiered on the account's last 12 months"
)
async def comparison(account_no: str, user: CurrentUser, pool: Pool, parts: Parts) -> dict[str, Any]:
    await authorize(pool, user, account_no)
    try:
        async with pool.connection() as conn:
            catalog = await parts.catalog.load(conn)
            return await tariff_comparison(conn, catalog, account_no)
    except AccountNotReady:
        raise Problem(404, "account_not_found", "Лицевой счёт не найден") from None


@router.get("/accounts/{account_no}/consumption", summary="kWh per month, for the chart")
async def consumption(
    account_no: str, user: CurrentUser, pool: Pool, months: Annotated[int, Query(ge=1, le=120)] = 24
) -> list[dict[str, Any]]:
    await authorize(pool, user, account_no)
    async with pool.connection() as conn:
        return await consumption_by_month(conn, account_no, period_of(today_in_almaty()), months)


# --- the app --------------------------------------------------------------------------------------


def _configure(app: FastAPI) -> None:
    app.include_router(router)

    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.code, exc.detail, exc.errors, exc.title)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": ".".join(str(x) for x in e.get("loc", ()) if x != "body"),
                "code": str(e.get("type", "invalid")),
                "message": str(e.get("msg", "")),
            }
            for e in exc.errors()
        ]
        return problem_response(
            422, "validation_error", "Некорректные данные запроса", errors, "Некорректный запрос"
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {
            401: ("not_authenticated", "Требуется вход в личный кабинет"),
            404: ("not_found", "Не найдено"),
        }
        code, detail = codes.get(exc.status_code, ("http_error", str(exc.detail)))
        return problem_response(exc.status_code, code, detail, headers=getattr(exc, "headers", None))


def create_app(settings: CalculatorSettings) -> FastAPI:
    app = create_service_app(
        settings, title="calculator (internal)", migrations_dir=MIGRATIONS_DIR, configure=_configure
    )
    app.state.token_verifier = TokenVerifier(settings.jwks_url)
    app.state.components = parts = Components()
    runtime_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[None]:
        async with runtime_lifespan(a):
            pool = a.state.resources.pool
            async with pool.connection() as conn:
                # The worker seeds the catalog at its start; an API started first must not rate with none.
                await parts.catalog.ensure_seeded(conn)
            yield

    app.router.lifespan_context = lifespan
    return app


app = create_app(CalculatorSettings())

__all__ = ["app", "create_app"]
