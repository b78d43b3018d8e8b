"""The identity service's internal HTTP API (users, credentials, sessions, profile). Only the gateway calls it.

It mirrors PUBLIC_API.md "Identity and profile" under `/internal/v1` (same bodies, responses and status
codes) and publishes the token-signing public keys at `/internal/v1/jwks.json`. Errors are
`application/problem+json` with a stable `code` and Russian texts; the gateway localizes by `code`.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Body, Depends, FastAPI, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from identity.adapters.keys import KeyConfigurationError, LocalTokenVerifier, TokenSigner
from identity.adapters.password_hashing import PasswordHashingBusy
from identity.adapters.postgres import UserRow
from identity.application.errors import (
    ApplicationError,
    InvalidAccessToken,
    NotAuthenticated,
    SessionRevoked,
)
from identity.application.service import IdentityService, TokenPair
from identity.bootstrap import build_service
from identity.domain.errors import DomainError, InvalidInput, Violation
from identity.domain.languages import Language, from_accept_language
from identity.settings import MIGRATIONS_DIR, IdentitySettings
from service_runtime.app import ServiceResources, create_service_app
from service_runtime.auth import AuthenticatedUser, InvalidToken, TokenVerifier

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
MAX_INPUT = 1024  # longer than any valid value; bounds the work of a hostile request

# --- bodies and responses ---------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", str_max_length=MAX_INPUT)

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        """NUL and the other C0 controls (tab and line breaks aside) are in no valid field, and PostgreSQL
        refuses NUL in text outright: a 422 here instead of a 500 from the database."""
        if isinstance(value, str):
            if any(ord(ch) < 32 and ch not in "\t\n\r" for ch in value):
                raise PydanticCustomError("control_characters", "control characters are not allowed")
            if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
                # A lone surrogate (from a JSON escape) is no character: it can't be encoded or stored.
                raise PydanticCustomError("string_unicode", "not a valid Unicode string")
        return value


class RegisterBody(_Body):
    email: str = Field(examples=["aigerim.nurlanovna@mail.kz"])
    password: str = Field(examples=["Жаңа-құпиясөз-2025"])
    full_name: str = Field(examples=["Нұрланқызы Әйгерім Серікқызы"])


class UserIdResponse(BaseModel):
    user_id: str = Field(examples=["0b6f3c4e-2a0d-4d5e-9a57-3f1e8c2b7d10"])


class LoginBody(_Body):
    email: str = Field(examples=["aigerim.nurlanovna@mail.kz"])
    password: str = Field(examples=["Жаңа-құпиясөз-2025"])


class TokenResponse(BaseModel):
    access_token: str = Field(
        description="EdDSA JWT, valid `expires_in` seconds", examples=["eyJhbGciOiJFZERTQSIs..."]
    )
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (a token type, not a secret)
    expires_in: int = Field(examples=[300])
    refresh_token: str = Field(description="opaque; single use: every refresh returns a new one")


class RefreshBody(_Body):
    refresh_token: str = Field(min_length=1)


class LogoutBody(_Body):
    refresh_token: str | None = None


class PasswordResetBody(_Body):
    email: str = Field(examples=["aigerim.nurlanovna@mail.kz"])


class PasswordResetConfirmBody(_Body):
    token: str = Field(min_length=1)
    new_password: str


class MessageResponse(BaseModel):
    message: str


class ProfileResponse(BaseModel):
    user_id: str
    email: str = Field(examples=["aigerim.nurlanovna@mail.kz"])
    email_verified: bool
    full_name: str = Field(examples=["Нұрланқызы Әйгерім Серікқызы"])
    language: Language = Field(description="language of the e-mails: ru, kk or en")


class ProfileMessageResponse(ProfileResponse):
    message: str


class ProfilePatchBody(_Body):
    full_name: str | None = Field(None, examples=["Иванов Иван Иванович"])
    language: Language | None = Field(None, examples=["kk"])


class ChangePasswordBody(_Body):
    current_password: str
    new_password: str
    new_password_confirm: str


class ChangeEmailBody(_Body):
    new_email: str = Field(examples=["new.address@mail.kz"])
    current_password: str


class ConfirmEmailBody(_Body):
    token: str = Field(min_length=1)


# --- problems -----------------------------------------------------------------------------------------


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    violations: list[Violation] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:lk-portal:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if violations:
        body["errors"] = [{"field": v.field, "message": v.message, "code": v.code} for v in violations]
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


_PYDANTIC_MESSAGES = {
    "missing": "Обязательное поле",
    "string_type": "Ожидается строка",
    "string_too_short": "Обязательное поле",
    "string_too_long": "Слишком длинное значение",
    "literal_error": "Недопустимое значение",
    "json_invalid": "Неверный формат JSON",
    "model_attributes_type": "Ожидается объект JSON",
    "dict_type": "Ожидается объект JSON",
    "control_characters": "Поле содержит недопустимые управляющие символы",
    "string_unicode": "Поле содержит недопустимые символы",
}


def _validation_problem(exc: RequestValidationError) -> JSONResponse:
    """422 with {field, message} per problem. Never echoes the input: it may be a password."""
    violations = []
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ()) if part != "body"]
        kind = str(error.get("type", ""))
        message = _PYDANTIC_MESSAGES.get(kind, "Недопустимое значение")
        if kind == "literal_error" and loc and loc[-1] == "language":
            message = "Допустимые языки: ru, kk, en"
        violations.append(Violation(".".join(loc) or "body", kind or "invalid", message))
    return problem(
        422, "validation_failed", "Ошибка в данных запроса", "Проверьте введённые данные", violations
    )


def _install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> JSONResponse:
        if isinstance(exc, ApplicationError):
            return problem(exc.status, exc.code, exc.title, exc.message, exc.violations, exc.headers)
        if isinstance(exc, InvalidInput):
            return problem(422, exc.code, "Ошибка в данных запроса", exc.message, exc.violations)
        return problem(
            422, exc.code, "Запрос отклонён", exc.message, [Violation("new_email", exc.code, exc.message)]
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_problem(exc)

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.error("dependency unavailable", extra={"error": repr(exc)})
        return problem(
            503,
            "service_unavailable",
            "Сервис временно недоступен",
            "Попробуйте повторить через несколько секунд",
            headers={"Retry-After": "5"},
        )

    for error in (
        RedisConnectionError,
        RedisTimeoutError,
        psycopg.OperationalError,
        PoolTimeout,
        PasswordHashingBusy,
    ):
        app.add_exception_handler(error, unavailable)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {404: "Не найдено", 405: "Метод не поддерживается"}
        return problem(
            exc.status_code,
            f"http_{exc.status_code}",
            titles.get(exc.status_code, "Ошибка запроса"),
            str(exc.detail),
            headers=dict(exc.headers or {}),
        )


# --- dependencies -------------------------------------------------------------------------------------


def identity(request: Request) -> IdentityService:
    service: IdentityService = request.app.state.identity
    return service


Service = Annotated[IdentityService, Depends(identity)]
_bearer = HTTPBearer(auto_error=False)
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def client_address(request: Request) -> str:
    """The caller's address: the first hop of X-Forwarded-For (set by the gateway), else the socket peer.

    Only the gateway reaches this internal API, so the header is trusted.
    """
    forwarded = request.headers.get("x-forwarded-for", "")
    first = forwarded.split(",")[0].strip()
    if first:
        try:
            return str(ipaddress.ip_address(first))
        except ValueError:
            pass
    return request.client.host if request.client else "unknown"


async def _verified(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> AuthenticatedUser | None:
    if credentials is None or credentials.scheme.lower() != "bearer":
        return None
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        return await verifier.verify(credentials.credentials)
    except InvalidToken:
        raise InvalidAccessToken() from None


async def signed_in(request: Request, credentials: Bearer, service: Service) -> AuthenticatedUser:
    """The caller, from a valid access token whose session is still alive (not logged out or revoked)."""
    user = await _verified(request, credentials)
    if user is None:
        raise NotAuthenticated()
    if not await service.session_active(user.session_id, user.user_id):
        raise SessionRevoked()
    return user


SignedIn = Annotated[AuthenticatedUser, Depends(signed_in)]


def _tokens(pair: TokenPair) -> TokenResponse:
    return TokenResponse(
        access_token=pair.access_token, expires_in=pair.expires_in, refresh_token=pair.refresh_token
    )


def _profile(row: UserRow) -> dict[str, Any]:
    return {
        "user_id": str(row.user_id),
        "email": row.email,
        "email_verified": row.email_verified,
        "full_name": row.full_name,
        "language": row.language,
    }


# --- routes -------------------------------------------------------------------------------------------

router = APIRouter(prefix="/internal/v1")
_PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"description": description, "content": {PROBLEM_JSON: {}}}
    for status, description in {
        400: "invalid, used or expired link",
        401: "not authenticated / wrong e-mail or password",
        409: "e-mail address already in use",
        422: "validation failed",
        429: "too many failed attempts (see Retry-After)",
    }.items()
}


@router.post(
    "/auth/register", status_code=201, response_model=UserIdResponse, tags=["auth"], responses=_PROBLEMS
)
async def register(
    body: RegisterBody, service: Service, accept_language: Annotated[str | None, Header()] = None
) -> UserIdResponse:
    """Creates a user. The e-mail language is taken from `Accept-Language` (ru by default)."""
    user_id = await service.register(
        body.email, body.password, body.full_name, from_accept_language(accept_language)
    )
    return UserIdResponse(user_id=str(user_id))


@router.post("/auth/login", response_model=TokenResponse, tags=["auth"], responses=_PROBLEMS)
async def login(body: LoginBody, request: Request, service: Service) -> TokenResponse:
    """A new session. A wrong password and an unknown e-mail get the same answer; repeated failures, 429."""
    pair = await service.login(
        body.email,
        body.password,
        client=client_address(request),
        user_agent=request.headers.get("user-agent", ""),
    )
    return _tokens(pair)


@router.post("/auth/refresh", response_model=TokenResponse, tags=["auth"], responses=_PROBLEMS)
async def refresh(body: RefreshBody, service: Service) -> TokenResponse:
    """Rotates the refresh token. Presenting an already rotated token ends the whole session."""
    return _tokens(await service.refresh(body.refresh_token))


@router.post("/auth/logout", status_code=204, tags=["auth"], responses=_PROBLEMS)
async def logout(
    request: Request,
    service: Service,
    credentials: Bearer,
    body: Annotated[LogoutBody | None, Body()] = None,
) -> Response:
    """Ends the session of the bearer token and/or of the refresh token in the body."""
    refresh_token = body.refresh_token if body is not None else None
    try:
        user = await _verified(request, credentials)
    except InvalidAccessToken:
        if not refresh_token:
            raise
        user = None
    session = (user.session_id, user.user_id) if user is not None else None
    if not await service.logout(session=session, refresh_token=refresh_token):
        raise NotAuthenticated()
    return Response(status_code=204)


@router.post("/auth/password-reset", status_code=202, response_model=MessageResponse, tags=["auth"])
async def password_reset(body: PasswordResetBody, request: Request, service: Service) -> MessageResponse:
    """Mails a single-use link (30 minutes). The answer is the same whether or not the address is known."""
    await service.request_password_reset(body.email, client=client_address(request))
    return MessageResponse(
        message="Если этот адрес зарегистрирован, на него отправлена ссылка для восстановления пароля"
    )


@router.post(
    "/auth/password-reset/confirm", response_model=MessageResponse, tags=["auth"], responses=_PROBLEMS
)
async def password_reset_confirm(body: PasswordResetConfirmBody, service: Service) -> MessageResponse:
    """Sets the new password with the mailed token; every session of the user ends."""
    await service.confirm_password_reset(body.token, body.new_password)
    return MessageResponse(message="Пароль изменён. Войдите с новым паролем")


@router.get("/me", response_model=ProfileResponse, tags=["profile"], responses=_PROBLEMS)
async def me(user: SignedIn, service: Service) -> dict[str, Any]:
    return _profile(await service.profile(user.user_id))


@router.patch("/me", response_model=ProfileMessageResponse, tags=["profile"], responses=_PROBLEMS)
async def update_me(body: ProfilePatchBody, user: SignedIn, service: Service) -> dict[str, Any]:
    """Changes the full name (ФИО) and/or the e-mail language."""
    if body.full_name is None and body.language is None:
        raise InvalidInput([Violation("full_name", "nothing_to_change", "Укажите, что изменить")])
    row = await service.update_profile(user.user_id, full_name=body.full_name, language=body.language)
    return {**_profile(row), "message": "Изменения сохранены"}


@router.post("/me/password", response_model=MessageResponse, tags=["profile"], responses=_PROBLEMS)
async def change_password(
    body: ChangePasswordBody, request: Request, user: SignedIn, service: Service
) -> MessageResponse:
    """Every other session ends, and a notice (never the password) is e-mailed."""
    await service.change_password(
        user.user_id,
        user.session_id,
        current=body.current_password,
        new=body.new_password,
        confirmation=body.new_password_confirm,
        client=client_address(request),
    )
    return MessageResponse(
        message="Пароль изменён. Остальные сеансы завершены; при следующем входе используйте новый пароль"
    )


@router.post(
    "/me/email", status_code=202, response_model=MessageResponse, tags=["profile"], responses=_PROBLEMS
)
async def change_email(
    body: ChangeEmailBody, request: Request, user: SignedIn, service: Service
) -> MessageResponse:
    """Mails a confirmation link to the new address and a notice to the current one; nothing changes yet."""
    await service.request_email_change(
        user.user_id,
        new_email=body.new_email,
        current_password=body.current_password,
        client=client_address(request),
    )
    return MessageResponse(
        message="На новый адрес отправлена ссылка для подтверждения. Адрес изменится после перехода по ней"
    )


@router.post(
    "/me/email/confirm", response_model=ProfileMessageResponse, tags=["profile"], responses=_PROBLEMS
)
async def confirm_email(body: ConfirmEmailBody, user: SignedIn, service: Service) -> dict[str, Any]:
    """The address changes now (and counts as verified)."""
    row = await service.confirm_email_change(user.user_id, body.token)
    return {**_profile(row), "message": "Адрес e-mail изменён"}


@router.get("/jwks.json", tags=["keys"])
async def jwks(request: Request) -> JSONResponse:
    """The public keys that verify access tokens: the current one, and previous ones during a rotation."""
    signer: TokenSigner = request.app.state.token_signer
    return JSONResponse(signer.jwks(), headers={"Cache-Control": "public, max-age=300"})


# --- the app ------------------------------------------------------------------------------------------


def create_app(settings: IdentitySettings) -> FastAPI:
    try:
        signer: TokenSigner | None = TokenSigner.from_settings(settings)
        key_error: KeyConfigurationError | None = None
    except KeyConfigurationError as exc:
        signer, key_error = None, exc

    def configure(app: FastAPI) -> None:
        if signer is not None:
            app.state.token_signer = signer
            app.state.token_verifier = LocalTokenVerifier(signer, settings.jwks_url)
        _install_problem_handlers(app)
        app.include_router(router)

    app = create_service_app(
        settings, title="identity (internal)", migrations_dir=MIGRATIONS_DIR, configure=configure
    )
    runtime_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        if signer is None:
            assert key_error is not None
            raise key_error  # refuse to start without a signing key
        async with runtime_lifespan(app) as state:
            res: ServiceResources = app.state.resources
            assert res.pool is not None
            app.state.identity = build_service(settings, res.pool, res.redis, signer)
            try:
                yield state
            finally:
                app.state.identity.close()

    app.router.lifespan_context = lifespan
    return app


app = create_app(IdentitySettings())
