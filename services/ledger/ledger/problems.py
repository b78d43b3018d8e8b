"""The ledger's own problems (codes, Russian texts, `type` URIs); the rest is `service_runtime.problems`.

Each problem has `type`, `title`, `status`, `detail`, a stable machine `code` (the gateway localizes by
it) and, for validation, `errors: [{field, message}]`. Texts are Russian.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from service_runtime import problems
from service_runtime.problems import PROBLEM_JSON as MEDIA_TYPE
from service_runtime.problems import Problem

__all__ = ["MEDIA_TYPE", "ApiProblem", "account_not_found", "install_problem_handlers", "validation_problem"]

_STATUS_CODES = {
    401: ("unauthorized", "Требуется вход", "Войдите в личный кабинет"),
    403: ("forbidden", "Доступ запрещён", "Недостаточно прав"),
    404: ("not_found", "Не найдено", "Запрошенный ресурс не найден"),
    405: ("method_not_allowed", "Метод не поддерживается", "Этот метод не поддерживается"),
}
_VALIDATION = ("validation_failed", "Некорректный запрос", "Проверьте параметры запроса")


class ApiProblem(Problem):
    def type_uri(self) -> str:
        return f"https://lk.almatyenergosbyt.kz/problems/{self.code.replace('_', '-')}"


def validation_problem(errors: list[dict[str, str]], code: str = _VALIDATION[0]) -> ApiProblem:
    return ApiProblem(422, code, _VALIDATION[1], _VALIDATION[2], errors=errors)


def account_not_found() -> ApiProblem:
    return ApiProblem(404, "account_not_found", "Лицевой счёт не найден", "Лицевой счёт не найден")


def _field_error(error: Any) -> dict[str, str]:
    loc = error.get("loc", ())
    return {
        "field": ".".join(str(p) for p in loc[1:]) or str(loc[0] if loc else ""),
        "message": "Некорректное значение",
    }


def install_problem_handlers(app: FastAPI) -> None:
    problems.install_problem_handlers(
        app,
        problem_class=ApiProblem,
        http_texts=_STATUS_CODES,
        validation_texts=_VALIDATION,
        field_error=_field_error,
    )
