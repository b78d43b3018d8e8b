"""The user aggregate: its state folded from its events, and the decisions that produce new events.

Stream `user:{user_id}`. Pure: the caller reads the stream, asks for a decision, appends the result with
the stream's version as the expected one (optimistic concurrency), and updates the read model.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from pydantic import BaseModel

from contracts.events.identity import (
    EmailChanged,
    EmailChangeRequested,
    FullNameChanged,
    LanguageChanged,
    PasswordChanged,
    PasswordChangeVia,
    UserRegistered,
)
from contracts.registry import EventPayload
from identity.domain.emails import check_email, email_key, normalize_email
from identity.domain.errors import EmailUnchanged, InvalidInput, Violation
from identity.domain.languages import Language
from identity.domain.names import check_full_name, normalize_full_name
from identity.domain.passwords import check_password

UserEvent = (
    UserRegistered | PasswordChanged | EmailChangeRequested | EmailChanged | FullNameChanged | LanguageChanged
)


@dataclass(frozen=True, slots=True)
class User:
    user_id: uuid.UUID
    email: str
    full_name: str
    language: Language
    email_verified: bool
    version: int  # the stream version this state includes


def evolve(state: User | None, event: BaseModel) -> User:
    """One event applied to the state (the same rules as the `users` read model)."""
    if isinstance(event, UserRegistered):
        return User(event.user_id, event.email, event.full_name, event.language, False, 1)
    if state is None:
        raise ValueError(f"{type(event).__name__} before UserRegistered")
    state = replace(state, version=state.version + 1)
    if isinstance(event, PasswordChanged):
        # A reset link reached the mailbox, so the address is proven.
        return replace(state, email_verified=state.email_verified or event.via == "reset")
    if isinstance(event, EmailChanged):
        return replace(state, email=event.new_email, email_verified=True)
    if isinstance(event, FullNameChanged):
        return replace(state, full_name=event.full_name)
    if isinstance(event, LanguageChanged):
        return replace(state, language=event.language)
    if isinstance(event, EmailChangeRequested):
        return state
    raise ValueError(f"not a user event: {type(event).__name__}")


def fold(events: Iterable[BaseModel]) -> User | None:
    state: User | None = None
    for event in events:
        state = evolve(state, event)
    return state


# --- decisions -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Registration:
    email: str
    full_name: str
    language: Language


def validate_registration(email: str, password: str, full_name: str, language: Language) -> Registration:
    """All problems at once (e-mail, password, name), so a form can show them together."""
    email = normalize_email(email)
    name = normalize_full_name(full_name)
    violations = check_email(email) + check_password(password, email=email) + check_full_name(name)
    if violations:
        raise InvalidInput(violations)
    return Registration(email, name, language)


def register(user_id: uuid.UUID, registration: Registration) -> list[EventPayload]:
    return [
        UserRegistered(
            user_id=user_id,
            email=registration.email,
            full_name=registration.full_name,
            language=registration.language,
        )
    ]


def validate_new_password(
    user: User, new_password: str, *, confirmation: str | None = None, field: str = "new_password"
) -> None:
    violations = check_password(new_password, email=user.email, field=field)
    if confirmation is not None and confirmation != new_password:
        violations.append(
            Violation("new_password_confirm", "password_confirmation_mismatch", "Пароли не совпадают")
        )
    if violations:
        only_mismatch = all(v.code == "password_confirmation_mismatch" for v in violations)
        raise InvalidInput(violations, "Пароли не совпадают" if only_mismatch else "Пароль не подходит")


def change_password(user: User, via: PasswordChangeVia) -> list[EventPayload]:
    return [PasswordChanged(user_id=user.user_id, via=via)]


def validate_new_email(user: User, new_email: str, field: str = "new_email") -> str:
    email = normalize_email(new_email)
    violations = check_email(email, field)
    if violations:
        raise InvalidInput(violations)
    if email_key(email) == email_key(user.email):
        raise EmailUnchanged()
    return email


def request_email_change(
    user: User, new_email: str, change_id: uuid.UUID, expires_at: datetime
) -> list[EventPayload]:
    return [
        EmailChangeRequested(
            user_id=user.user_id, change_id=change_id, new_email=new_email, expires_at=expires_at
        )
    ]


def confirm_email_change(user: User, change_id: uuid.UUID, new_email: str) -> list[EventPayload]:
    if email_key(new_email) == email_key(user.email):
        return []  # confirmed twice, or already the address: nothing changes
    return [
        EmailChanged(user_id=user.user_id, change_id=change_id, old_email=user.email, new_email=new_email)
    ]


def validate_full_name(full_name: str) -> str:
    name = normalize_full_name(full_name)
    violations = check_full_name(name)
    if violations:
        raise InvalidInput(violations)
    return name


def change_profile(user: User, *, full_name: str | None, language: Language | None) -> list[EventPayload]:
    """Only what actually changes becomes an event: saving the same name twice appends nothing."""
    events: list[EventPayload] = []
    if full_name is not None and full_name != user.full_name:
        events.append(FullNameChanged(user_id=user.user_id, full_name=full_name))
    if language is not None and language != user.language:
        events.append(LanguageChanged(user_id=user.user_id, language=language))
    return events
