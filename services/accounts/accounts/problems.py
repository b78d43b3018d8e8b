"""The accounts service's own problems (codes and Russian texts); the rest is `service_runtime.problems`.

Bodies carry nothing request-specific, so that the same failure always answers byte for byte the same
(linking's failures depend on it).
"""

from __future__ import annotations

from service_runtime.problems import Problem, install_problem_handlers

__all__ = [
    "Problem",
    "account_not_found",
    "install_problem_handlers",
    "link_proof_failed",
    "too_many_attempts",
]


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
