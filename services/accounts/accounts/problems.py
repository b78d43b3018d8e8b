"""Errors as `application/problem+json` (RFC 9457) with a stable machine `code`; texts in Russian.

The gateway localizes by `code`. Bodies carry nothing request-specific, so that the same failure
always answers byte for byte the same (linking's failures depend on it).
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


def link_proof_failed() -> Problem:
    """Every reason a proof fails (unknown account, no payment, wrong month or amount, reversed payment)."""
    return Problem(
        422,
        "account_link_failed",
        "Не удалось добавить лицевой счёт",
        "Проверьте номер лицевого счёта, месяц и сумму последнего платежа.",
    )


def too_many_attempts(retry_after: int) -> Problem:
    return Problem(
        429,
        "too_many_attempts",
        "Слишком много попыток",
        "Слишком много неудачных попыток. Повторите позже.",
        headers={"Retry-After": str(retry_after)},
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
    return {"field": _field(tuple(error.get("loc", ()))), "message": message, "code": kind}


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> Response:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        errors = [field_error(e) for e in exc.errors()]
        return Problem(
            422, "validation_error", "Ошибка в данных запроса", "Проверьте заполнение полей.", errors=errors
        ).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        code, title, detail = _HTTP.get(exc.status_code, ("error", "Ошибка", str(exc.detail)))
        return Problem(exc.status_code, code, title, detail, headers=exc.headers).response()
