"""The password policy. Pure: the hashing is an adapter's job (argon2id).

- at least 10 and at most 128 characters;
- not the e-mail address, nor its part before "@" (case-insensitively);
- not one character repeated ("aaaaaaaaaa").
"""

from __future__ import annotations

from identity.domain.errors import Violation

MIN_LENGTH = 10
MAX_LENGTH = 128


def check_password(password: str, *, email: str | None, field: str = "password") -> list[Violation]:
    violations: list[Violation] = []
    if len(password) < MIN_LENGTH:
        violations.append(
            Violation(field, "password_too_short", f"Пароль должен содержать не менее {MIN_LENGTH} символов")
        )
    if len(password) > MAX_LENGTH:
        violations.append(
            Violation(field, "password_too_long", f"Пароль должен содержать не более {MAX_LENGTH} символов")
        )
    if password and len(set(password)) == 1:
        violations.append(
            Violation(
                field,
                "password_single_character",
                "Пароль не может состоять из одного повторяющегося символа",
            )
        )
    if email:
        folded = password.strip().casefold()
        address = email.strip().casefold()
        if folded in (address, address.rpartition("@")[0]):
            violations.append(
                Violation(field, "password_equals_email", "Пароль не должен совпадать с адресом e-mail")
            )
    return violations
