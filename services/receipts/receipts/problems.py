"""Errors as `application/problem+json` (RFC 9457) with a stable machine `code`; texts in Russian.

The gateway localizes by `code`. Bodies carry nothing request-specific.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.errors = errors
        self.headers = dict(headers or {})

    def body(self) -> bytes:
        content: dict[str, Any] = {
            "type": f"urn:lk:problem:{self.code}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if self.errors is not None:
            content["errors"] = self.errors
        return orjson.dumps(content)

    def response(self) -> Response:
        return Response(self.body(), status_code=self.status, media_type=PROBLEM_JSON, headers=self.headers)


def account_not_found() -> Problem:
    """For an account the caller hasn't linked, whether or not it exists (never 403)."""
    return Problem(
        404, "account_not_found", "Лицевой счёт не найден", "Лицевой счёт не найден среди ваших счетов."
    )


def receipt_not_found() -> Problem:
    return Problem(
        404, "receipt_not_found", "Квитанция не найдена", "Квитанция за этот период ещё не сформирована."
    )


_HTTP = {
    401: ("unauthorized", "Требуется вход", "Войдите в личный кабинет."),
    403: ("forbidden", "Доступ запрещён", "Недостаточно прав."),
    404: ("not_found", "Не найдено", "Ресурс не найден."),
    405: ("method_not_allowed", "Метод не поддерживается", "Метод не поддерживается."),
}


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> Response:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        errors = [{"field": _field(tuple(e["loc"])), "message": str(e["msg"])} for e in exc.errors()]
        return Problem(
            422, "validation_error", "Ошибка в данных запроса", "Проверьте заполнение полей.", errors=errors
        ).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        code, title, detail = _HTTP.get(exc.status_code, ("error", "Ошибка", str(exc.detail)))
        return Problem(exc.status_code, code, title, detail, headers=exc.headers).response()
