"""`application/problem+json` (RFC 9457) for every error of the internal API.

Each problem has `type`, `title`, `status`, `detail`, a stable machine `code` (the gateway localizes by
it) and, for validation, `errors: [{field, message}]`. Texts are Russian.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

MEDIA_TYPE = "application/problem+json"

_STATUS_CODES = {
    401: ("unauthorized", "Требуется вход", "Войдите в личный кабинет"),
    403: ("forbidden", "Доступ запрещён", "Недостаточно прав"),
    404: ("not_found", "Не найдено", "Запрошенный ресурс не найден"),
    405: ("method_not_allowed", "Метод не поддерживается", "Этот метод не поддерживается"),
}


class ApiProblem(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.errors = errors
        self.headers = headers


def problem_body(problem: ApiProblem) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"https://lk.almatyenergosbyt.kz/problems/{problem.code.replace('_', '-')}",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "code": problem.code,
    }
    if problem.errors is not None:
        body["errors"] = problem.errors
    return body


def problem_response(problem: ApiProblem) -> JSONResponse:
    return JSONResponse(
        problem_body(problem), status_code=problem.status, media_type=MEDIA_TYPE, headers=problem.headers
    )


def validation_problem(errors: list[dict[str, str]], code: str = "validation_failed") -> ApiProblem:
    return ApiProblem(422, code, "Некорректный запрос", "Проверьте параметры запроса", errors)


def account_not_found() -> ApiProblem:
    return ApiProblem(404, "account_not_found", "Лицевой счёт не найден", "Лицевой счёт не найден")


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiProblem)
        return problem_response(exc)

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {
                "field": ".".join(str(p) for p in e.get("loc", ())[1:]) or str(e.get("loc", ("",))[0]),
                "message": "Некорректное значение",
            }
            for e in exc.errors()
        ]
        return problem_response(validation_problem(errors))

    async def on_http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code, title, detail = _STATUS_CODES.get(exc.status_code, ("error", "Ошибка", str(exc.detail)))
        headers = dict(exc.headers) if exc.headers else None
        return problem_response(ApiProblem(exc.status_code, code, title, detail, headers=headers))

    app.add_exception_handler(ApiProblem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
