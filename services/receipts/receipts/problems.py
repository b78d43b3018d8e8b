"""The receipts service's own problems (codes and Russian texts); the rest is `service_runtime.problems`.

Bodies carry nothing request-specific.
"""

from __future__ import annotations

from fastapi import FastAPI

from service_runtime import problems
from service_runtime.problems import Problem

__all__ = ["Problem", "account_not_found", "install_problem_handlers", "receipt_not_found"]


def account_not_found() -> Problem:
    """For an account the caller hasn't linked, whether or not it exists (never 403)."""
    return Problem(
        404, "account_not_found", "Лицевой счёт не найден", "Лицевой счёт не найден среди ваших счетов."
    )


def receipt_not_found() -> Problem:
    return Problem(
        404, "receipt_not_found", "Квитанция не найдена", "Квитанция за этот период ещё не сформирована."
    )


def install_problem_handlers(app: FastAPI) -> None:
    # The shared Russian field messages with codes, like every other service.
    problems.install_problem_handlers(app)
