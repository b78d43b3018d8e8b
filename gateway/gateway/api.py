"""The gateway: the public API v1 (shared/design/PUBLIC_API.md) and the web portal (domain/PORTAL.md).

`create_app(settings)` wires everything; uvicorn runs the module-level `app` (`gateway.api:app`).
The process owns no database: Redis holds the view cache, rate limits, idempotent replies and web
sessions; a background task consumes ledger and accounts events to invalidate the cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.types import Scope

from gateway import models as m
from gateway.adapters.cache import ViewCache
from gateway.adapters.idempotency import IdempotencyMiddleware
from gateway.adapters.invalidation import CacheInvalidator
from gateway.adapters.rate_limit import FailureLimiter, Limit
from gateway.adapters.revocation import RevokedSessions
from gateway.adapters.sessions import SessionStore
from gateway.adapters.upstream import Upstream, UpstreamProblem, UpstreamUnavailable
from gateway.application.backend import Backend
from gateway.i18n import catalogs, negotiate
from gateway.portal import pages as portal_pages
from gateway.portal.security import SecurityHeadersMiddleware
from gateway.problems import (
    ApiProblem,
    field_message,
    localize_upstream,
    problem_body,
    problem_response,
    service_name,
)
from gateway.public_api import problems as public_problems
from gateway.public_api import router as public_router
from gateway.request_guard import RequestGuardMiddleware
from gateway.settings import GatewaySettings
from gateway.web import Parts, client_ip
from service_runtime.app import ServiceResources, create_service_app
from service_runtime.auth import InvalidToken, KeysUnavailable, TokenVerifier

log = logging.getLogger(__name__)


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _api_lang(request: Request) -> Any:
    return negotiate(request.headers.get("accept-language"))


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiProblem)
    async def api_problem(request: Request, exc: ApiProblem) -> Response:
        if not _is_api(request):
            return await portal_pages.error_page(request, exc.status, exc.code)
        lang = _api_lang(request)
        body = problem_body(exc.status, exc.code, lang, params=exc.params, errors=exc.errors)
        return problem_response(body, lang, exc.headers)

    @app.exception_handler(UpstreamProblem)
    async def upstream_problem(request: Request, exc: UpstreamProblem) -> Response:
        if not _is_api(request):
            return await portal_pages.error_page(request, exc.status, exc.code)
        lang = _api_lang(request)
        return problem_response(localize_upstream(exc, lang), lang, exc.headers)

    @app.exception_handler(UpstreamUnavailable)
    async def upstream_down(request: Request, exc: UpstreamUnavailable) -> Response:
        log.warning("service unavailable", extra={"service": exc.service, "reason": exc.detail})
        if not _is_api(request):
            return await portal_pages.error_page(request, 503, "service_unavailable", service=exc.service)
        lang = _api_lang(request)
        body = problem_body(
            503, "service_unavailable", lang, params={"service": service_name(exc.service, lang)}
        )
        return problem_response(body, lang, {"Retry-After": "5"})

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if not _is_api(request):
            return await portal_pages.error_page(request, 400, "bad_request")
        lang = _api_lang(request)
        errors = []
        for error in exc.errors():
            loc = [
                str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path", "header")
            ]
            kind = str(error.get("type", "value_error"))
            errors.append(
                {"field": ".".join(loc) or "body", "message": field_message(kind, None, lang), "code": kind}
            )
        return problem_response(problem_body(422, "validation_error", lang, errors=errors), lang)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {
            404: "not_found",
            405: "method_not_allowed",
            401: "not_authenticated",
            413: "payload_too_large",
            415: "unsupported_media_type",
        }.get(exc.status_code, "bad_request")
        if not _is_api(request):
            return await portal_pages.error_page(request, exc.status_code, code)
        lang = _api_lang(request)
        return problem_response(problem_body(exc.status_code, code, lang), lang, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error")
        if not _is_api(request):
            return await portal_pages.error_page(request, 500, "internal_error")
        lang = _api_lang(request)
        return problem_response(problem_body(500, "internal_error", lang), lang)


def _problem_factory(
    status: int, code: str, accept_language: str | None
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    lang = negotiate(accept_language)
    response = problem_response(problem_body(status, code, lang), lang)
    return response.status_code, list(response.raw_headers), bytes(response.body)


def _document_problems(app: FastAPI) -> None:
    """The OpenAPI document gets the Problem schema that the error responses refer to."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = generate()
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            for model in (m.Problem, m.FieldError):
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                schema.pop("$defs", None)
                schemas[model.__name__] = schema
            # FastAPI's default 422 (HTTPValidationError) is not what the gateway answers: a problem.
            validation = public_problems(422)[422]
            # Refused before a handler runs (gateway.request_guard): bodies too large, not JSON, not UTF-8.
            body_problems = public_problems(400, 413, 415)
            for operation in (op for ops in spec.get("paths", {}).values() for op in ops.values()):
                response = operation.get("responses", {}).get("422")
                if response is not None and "application/json" in response.get("content", {}):
                    operation["responses"]["422"] = validation
                if "requestBody" in operation:
                    for status, documented in body_problems.items():
                        operation["responses"].setdefault(str(status), documented)
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    settings: GatewaySettings, *, transports: Mapping[str, httpx.AsyncBaseTransport] | None = None
) -> FastAPI:
    """The gateway app. `transports` (tests) route a service's calls to an in-process app."""
    catalogs()  # load the translations now: a broken catalog fails the start, not a request
    state: dict[str, Any] = {}

    def configure(app: FastAPI) -> None:
        _install_error_handlers(app)
        app.include_router(public_router)
        portal_pages.install(app)

        async def principal(scope: Scope, headers: dict[str, str]) -> str | None:
            parts: Parts | None = state.get("parts")
            if parts is None:
                return None
            auth = headers.get("authorization", "")
            if auth.lower().startswith("bearer "):
                try:
                    user = await parts.verifier.verify(auth[7:].strip())
                except (InvalidToken, KeysUnavailable, httpx.HTTPError):
                    return None
                if await parts.revoked.is_revoked(user.session_id):
                    return None  # the route refuses it (401); nothing to store
                return f"user:{user.user_id}"
            request = Request(scope)
            return f"ip:{client_ip(request)}"

        async def refuse(scope: Scope, status: int, code: str) -> Response:
            request = Request(scope)
            if not _is_api(request):
                return await portal_pages.error_page(request, status, code)
            lang = _api_lang(request)
            return problem_response(problem_body(status, code, lang), lang)

        # Inside the request-id middleware (outermost), so replies and rejections carry X-Request-ID too.
        app.user_middleware.insert(1, Middleware(SecurityHeadersMiddleware, hsts=settings.secure_cookies))
        # Before anything reads a body (the Idempotency-Key middleware reads it whole).
        app.user_middleware.insert(
            2,
            Middleware(
                RequestGuardMiddleware,
                max_body_bytes=settings.max_body_bytes,
                expose_operational=settings.expose_operational_endpoints,
                refuse=refuse,
            ),
        )
        app.user_middleware.insert(
            3,
            Middleware(
                IdempotencyMiddleware,
                redis=lambda: state["parts"].redis,
                prefix=lambda: settings.redis_prefix,
                ttl_s=lambda: settings.idempotency_ttl_s,
                principal=principal,
                problem=_problem_factory,
            ),
        )

    app = create_service_app(
        settings,
        title="Личный кабинет частного клиента: public API",
        version="1.0.0",
        description=(
            "The public API of the customer portal of АлматыЭнергоСбыт. JSON in and out; money as strings "
            "with two decimals; errors as application/problem+json in the language of Accept-Language "
            "(ru, kk, en). Writes accept an Idempotency-Key header (replayed for 24 h)."
        ),
        migrations_dir=None,
        uses_database=False,
        configure=configure,
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # Swagger UI would load scripts from a CDN: the document itself is the reference
        redoc_url=None,
    )
    _document_problems(app)
    runtime_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[None]:
        async with runtime_lifespan(a):
            res: ServiceResources = a.state.resources
            upstreams = {
                name: Upstream(
                    name,
                    url,
                    timeout_s=settings.identity_timeout_s
                    if name == "identity"
                    else settings.upstream_timeout_s,
                    attempts=settings.upstream_attempts,
                    document_timeout_s=settings.upstream_document_timeout_s,
                    max_connections=settings.upstream_max_connections,
                    transport=(transports or {}).get(name),
                )
                for name, url in settings.service_urls.items()
            }
            cache = ViewCache(
                res.redis,
                settings.redis_prefix,
                ttl_s=settings.cache_ttl_s,
                links_ttl_s=settings.links_ttl_s,
                hot_window_s=settings.cache_hot_window_s,
            )
            parts = Parts(
                settings=settings,
                redis=res.redis,
                backend=Backend(upstreams, cache),
                cache=cache,
                limiter=FailureLimiter(res.redis, settings.redis_prefix),
                sessions=SessionStore(
                    res.redis,
                    settings.redis_prefix,
                    settings.secret_key.get_secret_value(),
                    idle_ttl_s=settings.session_idle_ttl_s,
                    max_age_s=settings.session_max_age_s,
                ),
                verifier=getattr(a.state, "token_verifier", None) or TokenVerifier(settings.jwks_url),
                login_limit=Limit("login", settings.login_max_failures, settings.login_window_s),
                link_limit=Limit("link", settings.link_max_failures, settings.link_window_s),
                register_limit=Limit("register", settings.register_max_conflicts, settings.register_window_s),
                revoked=RevokedSessions(res.redis, settings.identity_redis_prefix),
            )
            a.state.parts = state["parts"] = parts
            a.state.token_verifier = parts.verifier
            invalidator: CacheInvalidator | None = None
            task: asyncio.Task[None] | None = None
            if settings.cache_consumer_enabled:
                invalidator = CacheInvalidator(
                    cache, settings.kafka_bootstrap_servers, group_id=settings.cache_consumer_group
                )
                task = asyncio.create_task(invalidator.run(), name="cache-invalidation")
            a.state.invalidator = invalidator
            try:
                yield
            finally:
                if invalidator is not None and task is not None:
                    invalidator.stop()
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
                await parts.backend.aclose()

    app.router.lifespan_context = lifespan
    return app


app = create_app(GatewaySettings())
