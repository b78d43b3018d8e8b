"""Errors as `application/problem+json` (RFC 9457) with a stable machine `code`; texts in Russian.

Every problem has `type`, `title`, `status`, `detail`, `code` and, for validation, `errors:
[{field, message, code}]`. The gateway localizes by `code`. Bodies carry nothing request-specific
(never the input), so the same failure always answers byte for byte the same.

A service keeps only its own problems (its codes and texts) and installs the handlers with
`install_problem_handlers(app)`; where a service's answers differ from the defaults (its `type` URIs,
its texts for plain HTTP errors, its validation problem), it passes them in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """An error answer; raise it from an endpoint (the installed handler renders it)."""

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

    def type_uri(self) -> str:
        return f"urn:lk:problem:{self.code}"

    def content(self) -> dict[str, Any]:
        content: dict[str, Any] = {
            "type": self.type_uri(),
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if self.errors is not None:
            content["errors"] = self.errors
        return content

    def body(self) -> bytes:
        return orjson.dumps(self.content())

    def response(self) -> Response:
        return Response(self.body(), status_code=self.status, media_type=PROBLEM_JSON, headers=self.headers)


# Plain HTTP errors (unknown route, wrong method, missing token): status -> (code, title, detail).
HTTP_TEXTS: dict[int, tuple[str, str, str]] = {
    401: ("unauthorized", "Требуется вход", "Войдите в личный кабинет."),
    403: ("forbidden", "Доступ запрещён", "Недостаточно прав."),
    404: ("not_found", "Не найдено", "Ресурс не найден."),
    405: ("method_not_allowed", "Метод не поддерживается", "Метод не поддерживается."),
}
# The validation problem (a request that doesn't fit the endpoint's models): (code, title, detail).
VALIDATION_TEXTS = ("validation_error", "Ошибка в данных запроса", "Проверьте заполнение полей.")


def field_name(loc: tuple[Any, ...]) -> str:
    """`a.b` of pydantic's error location, without the `body`/`query`/`path`/`header` part."""
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


# Field messages by pydantic's error type: Russian here; the gateway translates by `code` (the same codes).
FIELD_MESSAGES: dict[str, str] = {
    "missing": "Обязательное поле",
    "string_type": "Ожидается строка",
    "string_too_short": "Обязательное поле",
    "string_too_long": "Слишком длинное значение",
    "string_pattern_mismatch": "Неверный формат",
    "literal_error": "Недопустимое значение",
    "enum": "Недопустимое значение",
    "json_invalid": "Неверный формат JSON",
    "model_attributes_type": "Ожидается объект JSON",
    "dict_type": "Ожидается объект JSON",
    "model_type": "Ожидается объект JSON",
    "list_type": "Ожидается список",
    "int_parsing": "Ожидается целое число",
    "int_type": "Ожидается целое число",
    "bool_parsing": "Ожидается значение true или false",
    "bool_type": "Ожидается значение true или false",
    "uuid_parsing": "Неверный идентификатор",
    "greater_than": "Значение должно быть больше нуля",
    "decimal_parsing": "Ожидается сумма, например 1234.50",
    "decimal_type": "Ожидается сумма, например 1234.50",
    "decimal_max_places": "Не более двух знаков после запятой",
    "decimal_max_digits": "Слишком большое число",
    "blank": "Поле не может быть пустым",
    "control_characters": "Поле содержит недопустимые управляющие символы",
    "string_unicode": "Поле содержит недопустимые символы",
    "value_error": "Недопустимое значение",
}
# The ValueErrors of contracts.money and contracts.types, by their text: a precise code for each.
_VALUE_ERRORS: dict[str, str] = {
    "at most two decimals are allowed": "decimal_max_places",
    "not a number": "decimal_parsing",
    "not a finite number": "decimal_parsing",
    "money must be a string": "decimal_type",
    "money must be a string or an integer, not a float": "decimal_type",
    "amount is out of range": "decimal_max_digits",
    "must be greater than 0": "greater_than",
}


def field_error(error: Any) -> dict[str, str]:
    """One field's problem: `{field, message, code}`, the message in Russian (never pydantic's English,
    never the input: it is echoed nowhere)."""
    kind = str(error.get("type", "value_error"))
    if kind == "value_error":
        cause = error.get("ctx", {}).get("error")
        kind = _VALUE_ERRORS.get(str(cause), kind)
    message = FIELD_MESSAGES.get(kind, FIELD_MESSAGES["value_error"])
    return {"field": field_name(tuple(error.get("loc", ()))), "message": message, "code": kind}


def install_problem_handlers(
    app: FastAPI,
    *,
    problem_class: type[Problem] = Problem,
    http_texts: Mapping[int, tuple[str, str, str]] = HTTP_TEXTS,
    validation_texts: tuple[str, str, str] = VALIDATION_TEXTS,
    field_error: Callable[[Any], dict[str, str]] = field_error,
) -> None:
    """Render `Problem`s, request validation errors (422, one `field_error` per error) and plain HTTP
    errors (by `http_texts`, else "error" with the exception's detail) as problem+json."""

    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> Response:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        code, title, detail = validation_texts
        errors = [field_error(e) for e in exc.errors()]
        return problem_class(422, code, title, detail, errors=errors).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        code, title, detail = http_texts.get(exc.status_code, ("error", "Ошибка", str(exc.detail)))
        return problem_class(exc.status_code, code, title, detail, headers=exc.headers).response()
