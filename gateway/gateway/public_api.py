"""The public API v1 (shared/design/PUBLIC_API.md), composed from the services' internal APIs.

Handlers are thin: they authenticate the caller (the access JWT verified with identity's keys), apply
the gateway's rate limits, call `Backend`, and pass the services' bodies on. Errors become localized
problems in `gateway.api`'s exception handlers.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Depends, Query, Request, Response, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway import models as m
from gateway.adapters.rate_limit import Limit, retry_minutes
from gateway.adapters.upstream import PROBLEM_JSON, CallContext, UpstreamUnavailable
from gateway.application.backend import PERIOD, SERVICE_CODE, Backend, Caller, Document
from gateway.asyncapi import build_document as build_asyncapi
from gateway.i18n import Language, negotiate
from gateway.problems import ApiProblem
from gateway.web import Parts, client_ip, parts
from service_runtime.auth import InvalidToken, KeysUnavailable

_bearer = HTTPBearer(auto_error=False, description="the access_token from POST /api/v1/auth/login")
Bearer = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
P = Annotated[Parts, Depends(parts)]

_PROBLEM_EXAMPLES: dict[int, tuple[str, str, str, str]] = {
    400: (
        "bad_request",
        "Некорректный запрос",
        "Ссылка недействительна. Запросите новую",
        "An invalid, used or expired link; or a body that can't be read (not UTF-8, not JSON)",
    ),
    401: ("not_authenticated", "Требуется вход", "Войдите в личный кабинет.", "No valid access token"),
    404: (
        "account_not_found",
        "Лицевой счёт не найден",
        "Лицевой счёт не найден среди ваших счетов.",
        "Not the caller's account (whether or not it exists)",
    ),
    409: ("idempotency_in_progress", "Запрос уже выполняется", "Повторите попытку позже.", "Conflict"),
    413: (
        "payload_too_large",
        "Слишком большой запрос",
        "Размер запроса превышает допустимый. Сократите введённые данные.",
        "The body is larger than the gateway accepts (64 KiB)",
    ),
    415: (
        "unsupported_media_type",
        "Неподдерживаемый формат",
        "Тело запроса должно быть в формате JSON (Content-Type: application/json).",
        "The body is not JSON",
    ),
    422: ("validation_error", "Ошибка в данных запроса", "Проверьте заполнение полей.", "Validation failed"),
    429: (
        "too_many_requests",
        "Слишком много попыток",
        "Слишком много попыток. Повторите через 15 мин.",
        "Rate-limited; see Retry-After",
    ),
    503: (
        "service_unavailable",
        "Сервис временно недоступен",
        "Сервис «Начисления и платежи» временно недоступен. Повторите попытку позже.",
        "A service this call needs is down; see Retry-After",
    ),
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        code, title, detail, description = _PROBLEM_EXAMPLES[status]
        example = {
            "type": f"urn:lk:problem:{code}",
            "title": title,
            "status": status,
            "detail": detail,
            "code": code,
            "errors": [{"field": "last_payment_amount", "message": "Обязательное поле", "code": "missing"}]
            if status == 422
            else [],
        }
        out[status] = {
            "description": description,
            "content": {
                PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}, "example": example}
            },
        }
    return out


def _lang(request: Request) -> Language:
    return negotiate(request.headers.get("accept-language"))


def _ctx(request: Request, token: str | None = None) -> CallContext:
    return CallContext(
        token=token,
        language=_lang(request),
        client_ip=client_ip(request),
        user_agent=request.headers.get("user-agent"),
    )


async def authenticated(request: Request, credentials: Bearer, p: P) -> Caller:
    """The caller from `Authorization: Bearer <access JWT>`, verified with identity's public keys."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiProblem(401, "not_authenticated", headers={"WWW-Authenticate": "Bearer"})
    try:
        user = await p.verifier.verify(credentials.credentials)
    except InvalidToken:
        raise ApiProblem(401, "invalid_token", headers={"WWW-Authenticate": "Bearer"}) from None
    except (KeysUnavailable, httpx.HTTPError) as exc:
        raise UpstreamUnavailable("identity", "keys unavailable") from exc
    if await p.revoked.is_revoked(user.session_id):
        # Logged out, a reused refresh token, a password change: identity ended the session.
        raise ApiProblem(401, "session_revoked", headers={"WWW-Authenticate": "Bearer"})
    return Caller(str(user.user_id), _ctx(request, credentials.credentials))


Auth = Annotated[Caller, Depends(authenticated)]


def ok(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store", **(headers or {})})


def no_content() -> Response:
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


def document(doc: Document, *, filename: str | None = None) -> Response:
    headers = {"Cache-Control": "no-store"}
    name = filename or doc.filename
    if name and doc.media_type.startswith("application/pdf"):
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return Response(doc.content, media_type=doc.media_type, headers=headers)


def _period(value: str) -> str:
    if not PERIOD.fullmatch(value):
        raise ApiProblem(404, "receipt_not_found")
    return value


router = APIRouter(prefix="/api/v1")
PUBLIC = problems(422, 503)
AUTHED = problems(401, 422, 503)
ACCOUNT = problems(401, 404, 422, 503)

# --- identity and profile ------------------------------------------------------------------------------
identity = APIRouter(tags=["Identity and profile"])


@identity.post(
    "/auth/register", status_code=201, response_model=m.RegisterOut, responses=problems(409, 422, 429, 503)
)
async def register(body: m.RegisterIn, request: Request, p: P) -> JSONResponse:
    """Creates a user (e-mail, password, ФИО). E-mails go out in the language of `Accept-Language`.
    An address already in use is 409; repeated 409s from one client address get 429 (probing which
    addresses have an account is cut off)."""
    ip = await _not_blocked(p, p.register_limit, request)
    register = p.backend.identity("POST", "/auth/register", _ctx(request), m.dump(body))
    return ok(await p.limiter.counting(p.register_limit, ip, register, status=409), 201)


@identity.post("/auth/login", response_model=m.TokenOut, responses=problems(401, 422, 429, 503))
async def login(body: m.LoginIn, request: Request, p: P) -> JSONResponse:
    """Signs in. Failed attempts are limited per client address (429 with Retry-After)."""
    ip = await _not_blocked(p, p.login_limit, request)
    login = p.backend.identity("POST", "/auth/login", _ctx(request), m.dump(body))
    return ok(await p.limiter.counting(p.login_limit, ip, login, status=401))


@identity.post("/auth/refresh", response_model=m.TokenOut, responses=problems(401, 422, 503))
async def refresh(body: m.RefreshIn, request: Request, p: P) -> JSONResponse:
    """A new access token for a refresh token; the refresh token rotates (single use)."""
    return ok(await p.backend.identity("POST", "/auth/refresh", _ctx(request), m.dump(body)))


@identity.post("/auth/logout", status_code=204, responses=problems(401, 503))
async def logout(request: Request, credentials: Bearer, p: P, body: m.LogoutIn | None = None) -> Response:
    """Ends the session of the bearer token and/or of the refresh token in the body."""
    token = credentials.credentials if credentials is not None else None
    if token is None and (body is None or body.refresh_token is None):
        raise ApiProblem(401, "not_authenticated", headers={"WWW-Authenticate": "Bearer"})
    await p.backend.identity("POST", "/auth/logout", _ctx(request, token), m.dump(body) if body else None)
    return no_content()


@identity.post("/auth/password-reset", status_code=202, response_model=m.MessageOut, responses=PUBLIC)
async def password_reset(body: m.PasswordResetIn, request: Request, p: P) -> JSONResponse:
    """Mails a reset link if the address is known; the answer is the same either way."""
    return ok(await p.backend.identity("POST", "/auth/password-reset", _ctx(request), m.dump(body)), 202)


@identity.post("/auth/password-reset/confirm", response_model=m.MessageOut, responses=problems(400, 422, 503))
async def password_reset_confirm(body: m.PasswordResetConfirmIn, request: Request, p: P) -> JSONResponse:
    """Sets a new password with the token from the mailed link."""
    return ok(await p.backend.identity("POST", "/auth/password-reset/confirm", _ctx(request), m.dump(body)))


@identity.get("/me", response_model=m.Profile, responses=problems(401, 503))
async def me(caller: Auth, p: P) -> JSONResponse:
    """The caller's profile."""
    return ok(await p.backend.identity("GET", "/me", caller.ctx))


@identity.patch("/me", response_model=m.ProfileMessage, responses=AUTHED)
async def patch_me(body: m.ProfilePatchIn, caller: Auth, p: P) -> JSONResponse:
    """Changes the full name (ФИО) and/or the language of e-mails."""
    return ok(await p.backend.identity("PATCH", "/me", caller.ctx, m.dump(body)))


@identity.post("/me/password", response_model=m.MessageOut, responses=problems(401, 422, 429, 503))
async def change_password(body: m.PasswordChangeIn, caller: Auth, p: P) -> JSONResponse:
    """Every other session ends; a notice (never the password) is e-mailed."""
    return ok(await p.backend.identity("POST", "/me/password", caller.ctx, m.dump(body)))


@identity.post(
    "/me/email", status_code=202, response_model=m.MessageOut, responses=problems(401, 422, 429, 503)
)
async def change_email(body: m.EmailChangeIn, caller: Auth, p: P) -> JSONResponse:
    """Mails a confirmation link to the new address; the address changes when it is followed."""
    return ok(await p.backend.identity("POST", "/me/email", caller.ctx, m.dump(body)), 202)


@identity.post("/me/email/confirm", response_model=m.ProfileMessage, responses=problems(400, 401, 422, 503))
async def confirm_email(body: m.EmailConfirmIn, caller: Auth, p: P) -> JSONResponse:
    """Confirms the new address with the token from the link."""
    return ok(await p.backend.identity("POST", "/me/email/confirm", caller.ctx, m.dump(body)))


# --- personal accounts ---------------------------------------------------------------------------------
accounts = APIRouter(tags=["Personal accounts"])


@accounts.get("/accounts", response_model=list[m.AccountSummary], responses=problems(401, 503))
async def list_accounts(caller: Auth, p: P) -> JSONResponse:
    """The caller's linked accounts with their balances. A balance is null while the ledger is down."""
    result = await p.backend.account_list(caller)
    headers = {"Warning": '199 - "balances unavailable"'} if result.balances_unavailable else None
    return ok(result.accounts, headers=headers)


@accounts.post("/accounts", status_code=201, response_model=m.LinkOut, responses=problems(401, 422, 429, 503))
async def link_account(body: m.LinkIn, request: Request, caller: Auth, p: P) -> JSONResponse:
    """Links an account by proof of the last payment (month and amount). A wrong proof: 422 with one
    generic message; repeated failures: 429."""
    ip = await _not_blocked(p, p.link_limit, request)
    link = p.backend.link_account(caller, m.dump(body))
    return ok(await p.limiter.counting(p.link_limit, ip, link, status=422), 201)


@accounts.delete("/accounts/{account_no}", status_code=204, responses=problems(401, 404, 503))
async def unlink_account(account_no: str, caller: Auth, p: P) -> Response:
    """Removes the account from the caller's list (the account itself stays)."""
    await p.backend.unlink_account(caller, account_no)
    return no_content()


@accounts.get("/accounts/{account_no}", response_model=m.AccountDetails, responses=problems(401, 404, 503))
async def account(account_no: str, caller: Auth, p: P) -> JSONResponse:
    """«Информация по лицевому счёту»: payer, address, residents, meter, district office."""
    return ok(await p.backend.account_info(caller, account_no))


@accounts.get(
    "/accounts/{account_no}/requests",
    response_model=list[m.ServiceRequest],
    responses=problems(401, 404, 503),
)
async def list_requests(account_no: str, caller: Auth, p: P) -> JSONResponse:
    """The caller's requests (заявки) on the account, with their status."""
    return ok(await p.backend.account_call(caller, account_no, "accounts", "GET", "/requests"))


@accounts.post(
    "/accounts/{account_no}/requests",
    status_code=201,
    response_model=m.ServiceRequestCreated,
    responses=ACCOUNT,
)
async def submit_request(
    account_no: str, body: m.ServiceRequestIn, request: Request, caller: Auth, p: P
) -> JSONResponse:
    """«Подать заявку»: a request to the supplier."""
    key = request.headers.get("idempotency-key")
    headers = {"Idempotency-Key": key} if key else None
    result = await p.backend.account_call(
        caller, account_no, "accounts", "POST", "/requests", json=m.dump(body), headers=headers
    )
    return ok(result, 201)


# --- services, payments, readings, calculation ---------------------------------------------------------
money = APIRouter(tags=["Services, payments, readings, calculation"])
PeriodQuery = Annotated[
    str | None, Query(pattern=r"^(19|20|21)[0-9]{2}-(0[1-9]|1[0-2])$", examples=["2025-01"])
]


@money.get("/accounts/{account_no}/services", response_model=list[m.ServiceBalances], responses=ACCOUNT)
async def services(
    account_no: str,
    caller: Auth,
    p: P,
    from_: Annotated[PeriodQuery, Query(alias="from")] = None,
    to: PeriodQuery = None,
) -> JSONResponse:
    """«Информация по услугам»: per service and month, opening balance, accrual, corrections, payments,
    closing balance, for the period «с … по …» (YYYY-MM)."""
    params = {"from": from_, "to": to}
    return ok(await p.backend.account_call(caller, account_no, "ledger", "GET", "/services", params=params))


@money.get(
    "/accounts/{account_no}/services/{service_code}/statement",
    response_model=m.Statement,
    responses={
        **ACCOUNT,
        200: {
            "description": "the statement as JSON, or `?format=pdf` the printable «Выписка по услуге»",
            "content": {"application/pdf": {}, "text/html": {}},
        },
    },
)
async def statement(
    account_no: str,
    service_code: str,
    caller: Auth,
    p: P,
    from_: Annotated[PeriodQuery, Query(alias="from")] = None,
    to: PeriodQuery = None,
    format: Literal["json", "pdf", "html"] = "json",
) -> Response:
    """«Выписка по услуге»: service and supplier, then per month the tariff and the balances."""
    if not SERVICE_CODE.fullmatch(service_code):
        raise ApiProblem(404, "service_not_found")
    params: dict[str, str | None] = {"from": from_, "to": to}
    subpath = f"/services/{service_code}/statement"
    if format == "json":
        return ok(await p.backend.account_call(caller, account_no, "ledger", "GET", subpath, params=params))
    doc = await p.backend.account_document(
        caller, account_no, "ledger", subpath, {**params, "format": format}
    )
    return document(doc, filename=f"statement-{account_no}-{service_code}.pdf")


@money.get("/accounts/{account_no}/payments", response_model=list[m.Payment], responses=ACCOUNT)
async def payments(
    account_no: str,
    caller: Auth,
    p: P,
    from_: Annotated[m.IsoDate | None, Query(alias="from", examples=["2025-01-01"])] = None,
    to: Annotated[m.IsoDate | None, Query(examples=["2025-12-31"])] = None,
) -> JSONResponse:
    """«Платежи»: payments received (date, amount, bank) in the period."""
    params = {"from": from_.isoformat() if from_ else None, "to": to.isoformat() if to else None}
    return ok(await p.backend.account_call(caller, account_no, "ledger", "GET", "/payments", params=params))


@money.get("/accounts/{account_no}/balance", response_model=m.Balance, responses=ACCOUNT)
async def balance(account_no: str, caller: Auth, p: P) -> JSONResponse:
    """The account's current balance (positive: owed)."""
    return ok(await p.backend.balance(caller, account_no))


@money.get("/accounts/{account_no}/readings", response_model=list[m.Reading], responses=ACCOUNT)
async def readings(account_no: str, caller: Auth, p: P) -> JSONResponse:
    """The account's meter readings (customer's and the grid company's) with consumption."""
    return ok(await p.backend.account_call(caller, account_no, "calculator", "GET", "/readings"))


@money.post(
    "/accounts/{account_no}/readings",
    status_code=201,
    response_model=m.ReadingAccepted,
    responses={**ACCOUNT, **problems(409)},
)
async def submit_reading(account_no: str, body: m.ReadingIn, caller: Auth, p: P) -> JSONResponse:
    """«Передать показания». An implausible consumption is refused with 422 (`implausible_consumption`)
    until it is re-sent with `confirm_implausible: true`."""
    result = await p.backend.account_call(
        caller, account_no, "calculator", "POST", "/readings", json=m.dump(body)
    )
    return ok(result, 201)


@money.post("/accounts/{account_no}/calculation", response_model=m.RatingResult, responses=ACCOUNT)
async def calculation(account_no: str, body: m.CalculationIn, caller: Auth, p: P) -> JSONResponse:
    """«Расчёт начислений по эл.энергии»: rates a reading from the account's last recorded one."""
    return ok(
        await p.backend.account_call(
            caller, account_no, "calculator", "POST", "/calculation", json=m.dump(body)
        )
    )


@money.get("/accounts/{account_no}/tariff-comparison", response_model=m.TariffComparison, responses=ACCOUNT)
async def tariff_comparison(account_no: str, caller: Auth, p: P) -> JSONResponse:
    """The flat vs the tiered tariff on the account's own recent consumption."""
    return ok(await p.backend.account_call(caller, account_no, "calculator", "GET", "/tariff-comparison"))


@money.get("/accounts/{account_no}/consumption", response_model=list[m.ConsumptionMonth], responses=ACCOUNT)
async def consumption(
    account_no: str, caller: Auth, p: P, months: Annotated[int, Query(ge=1, le=120)] = 24
) -> JSONResponse:
    """kWh per month (for the consumption chart), the last `months` months."""
    params = {"months": str(months)}
    return ok(
        await p.backend.account_call(caller, account_no, "calculator", "GET", "/consumption", params=params)
    )


@money.post("/tariffs/quote", response_model=m.RatingResult, responses=PUBLIC)
async def quote(body: m.QuoteIn, request: Request, p: P) -> JSONResponse:
    """Rates two explicit readings for given household parameters. Public: no login."""
    return ok(
        await p.backend.call(
            "calculator", "POST", "/internal/v1/tariffs/quote", _ctx(request), json=m.dump(body)
        )
    )


@money.get("/tariffs", response_model=m.Tariffs, responses=problems(503))
async def tariffs(request: Request, p: P) -> JSONResponse:
    """The tariff catalog and VAT rates, with their effective dates. Public."""
    return ok(await p.backend.call("calculator", "GET", "/internal/v1/tariffs", _ctx(request)))


# --- receipts and e-bills --------------------------------------------------------------------------------
bills = APIRouter(tags=["Receipts and e-bills"])


@bills.get("/accounts/{account_no}/receipts", response_model=list[m.ReceiptSummary], responses=ACCOUNT)
async def receipts(
    account_no: str,
    caller: Auth,
    p: P,
    from_: Annotated[PeriodQuery, Query(alias="from")] = None,
    to: PeriodQuery = None,
) -> JSONResponse:
    """«Квитанции»: the monthly bills."""
    params = {"from": from_, "to": to}
    return ok(await p.backend.account_call(caller, account_no, "receipts", "GET", "/receipts", params=params))


@bills.get(
    "/accounts/{account_no}/receipts/{period}.pdf",
    responses={
        **ACCOUNT,
        200: {"description": "the bill: front and back", "content": {"application/pdf": {}}},
    },
    response_class=Response,
)
async def receipt_pdf(account_no: str, period: str, caller: Auth, p: P) -> Response:
    """The bill as a PDF of two pages: the front and the back side."""
    doc = await p.backend.account_document(
        caller, account_no, "receipts", f"/receipts/{_period(period)}.pdf", {}
    )
    return document(doc, filename=f"receipt-{account_no}-{period}.pdf")


@bills.get(
    "/accounts/{account_no}/receipts/{period}/html",
    responses={**ACCOUNT, 200: {"description": "one side of the bill as HTML", "content": {"text/html": {}}}},
    response_class=Response,
)
async def receipt_html(
    account_no: str, period: str, caller: Auth, p: P, side: Literal["front", "back"] = "front"
) -> Response:
    """One side of the bill (`front`: «Квитанция», `back`: «Оборотная сторона счета») as HTML."""
    doc = await p.backend.account_document(
        caller, account_no, "receipts", f"/receipts/{_period(period)}/html", {"side": side}
    )
    return document(doc)


@bills.get("/accounts/{account_no}/receipts/{period}", response_model=m.Receipt, responses=ACCOUNT)
async def receipt(account_no: str, period: str, caller: Auth, p: P) -> JSONResponse:
    """The bill's data, front and back."""
    return ok(
        await p.backend.account_call(caller, account_no, "receipts", "GET", f"/receipts/{_period(period)}")
    )


@bills.get("/accounts/{account_no}/ebill", response_model=list[m.EBill], responses=ACCOUNT)
async def get_ebill(account_no: str, caller: Auth, p: P) -> JSONResponse:
    """The caller's e-bill subscription of the account (an empty list when there is none)."""
    return ok(await p.backend.account_call(caller, account_no, "receipts", "GET", "/ebill"))


@bills.put("/accounts/{account_no}/ebill", response_model=m.EBill, responses=ACCOUNT)
async def put_ebill(account_no: str, body: m.EBillIn, caller: Auth, p: P) -> JSONResponse:
    """«Подписаться на электронную квитанцию»: monthly bills by e-mail."""
    return ok(
        await p.backend.account_call(caller, account_no, "receipts", "PUT", "/ebill", json=m.dump(body))
    )


@bills.delete("/accounts/{account_no}/ebill", status_code=204, responses=ACCOUNT)
async def delete_ebill(account_no: str, caller: Auth, p: P) -> Response:
    """Ends the e-bill subscription."""
    await p.backend.account_call(caller, account_no, "receipts", "DELETE", "/ebill")
    return no_content()


# --- reference -----------------------------------------------------------------------------------------
reference = APIRouter(tags=["Reference"])


@reference.get("/contact-center", response_model=m.ContactCenterOut)
async def contact_center(p: P) -> JSONResponse:
    """«Контактные данные Контакт-центра»."""
    return JSONResponse(
        p.settings.contact_center.model_dump(), headers={"Cache-Control": "public, max-age=300"}
    )


@reference.get("/district-offices", response_model=list[m.DistrictOffice], responses=problems(503))
async def district_offices(p: P) -> JSONResponse:
    """The district offices (РОЭС) with their contacts."""
    rows = await p.backend.district_offices()
    return JSONResponse(rows, headers={"Cache-Control": "public, max-age=60"})


@reference.get(
    "/asyncapi.json",
    responses={
        200: {
            "description": "the AsyncAPI 3.0 document of the back-office's topics and their dead letters",
            "content": {"application/json": {}},
        }
    },
)
async def asyncapi() -> JSONResponse:
    """The back-office contract (shared/design/BACKOFFICE_EVENTS.md) as an AsyncAPI 3.0 document,
    generated from the contracts package: topics, messages, payload schemas, dead-letter topics."""
    return JSONResponse(build_asyncapi(), headers={"Cache-Control": "public, max-age=300"})


def too_many(retry_after: int) -> ApiProblem:
    return ApiProblem(
        429,
        "too_many_requests",
        params={"minutes": retry_minutes(retry_after)},
        headers={"Retry-After": str(retry_after)},
    )


async def _not_blocked(p: Parts, limit: Limit, request: Request) -> str:
    """The client's address, unless it used up its failures under `limit` (then 429)."""
    ip = client_ip(request)
    retry_after = await p.limiter.blocked(limit, ip)
    if retry_after is not None:
        raise too_many(retry_after)
    return ip


for _sub in (identity, accounts, money, bills, reference):
    router.include_router(_sub)


def backend_of(request: Request) -> Backend:
    return parts(request).backend
