"""What the domain rejects, with a stable machine code and a Russian message per problem.

The API turns these into `application/problem+json`; the gateway localizes by `code`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Violation:
    """One problem with one input field."""

    field: str
    code: str
    message: str


class DomainError(Exception):
    """A command the domain refuses. `code` is stable; `message` is Russian, for people."""

    code: str = "domain_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidInput(DomainError):
    """One or more fields are invalid: each violation names its field."""

    code = "validation_failed"

    def __init__(self, violations: list[Violation], message: str = "Проверьте введённые данные") -> None:
        super().__init__(message)
        self.violations = violations


class EmailUnchanged(DomainError):
    code = "email_unchanged"

    def __init__(self) -> None:
        super().__init__("Новый адрес совпадает с текущим")
