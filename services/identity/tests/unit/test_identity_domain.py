"""The pure rules: password policy, full names, e-mail syntax, languages, the user aggregate."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.events.identity import (
    EmailChanged,
    EmailChangeRequested,
    FullNameChanged,
    LanguageChanged,
    PasswordChanged,
    UserRegistered,
)
from identity.domain import user as domain
from identity.domain.emails import check_email, email_key, mask_email, normalize_email
from identity.domain.errors import EmailUnchanged, InvalidInput
from identity.domain.languages import from_accept_language
from identity.domain.names import check_full_name, normalize_full_name
from identity.domain.passwords import check_password


def codes(violations: list) -> list[str]:  # type: ignore[type-arg]
    return [v.code for v in violations]


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        ("Надёжный-пароль-1", []),
        ("abcdefghi", ["password_too_short"]),
        ("a" * 10, ["password_single_character"]),
        ("          ", ["password_single_character"]),
        ("x" * 129, ["password_too_long", "password_single_character"]),
        ("Ivan.Petrov@Mail.kz", ["password_equals_email"]),
        ("ivan.petrov", ["password_equals_email"]),  # the part before "@"
        ("ivan.petrov@mail.kz1", []),
    ],
)
def test_password_policy(password: str, expected: list[str]) -> None:
    assert codes(check_password(password, email="ivan.petrov@mail.kz")) == expected


def test_password_policy_messages_are_russian() -> None:
    (violation,) = check_password("short", email=None)
    assert (
        violation.field == "password" and violation.message == "Пароль должен содержать не менее 10 символов"
    )


@pytest.mark.parametrize(
    "name",
    [
        "Иванов Иван Иванович",
        "Нұрланқызы Әйгерім",
        "ӘәҒғҚқҢңӨөҰұҮүҺһІі",
        "Жан-Поль Сартр",
        "O'Brien",
        "Д’Артаньян",
        "Ли",
        "José Müller",
    ],
)
def test_valid_full_names(name: str) -> None:
    assert check_full_name(normalize_full_name(name)) == []


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("Я", "full_name_too_short"),
        ("", "full_name_too_short"),
        ("Ж" * 151, "full_name_too_long"),
        ("Иван 2", "full_name_invalid_characters"),
        ("Иван_Иванов", "full_name_invalid_characters"),
        ("Иван.", "full_name_invalid_characters"),
        ("-Иван", "full_name_invalid_format"),
        ("Иван-", "full_name_invalid_format"),
        ("Иван--Петров", "full_name_invalid_format"),
        ("Иван -Петров", "full_name_invalid_format"),
        ("'", "full_name_too_short"),
    ],
)
def test_invalid_full_names(name: str, code: str) -> None:
    assert codes(check_full_name(normalize_full_name(name))) == [code]


def test_full_name_whitespace_is_normalized() -> None:
    assert normalize_full_name("  Иванов\t Иван \n Иванович ") == "Иванов Иван Иванович"
    # NFC: a decomposed "й" (и + combining breve) becomes one letter.
    decomposed = "Андре\u0438\u0306"
    assert len(decomposed) == 7 and normalize_full_name(decomposed) == "Андрей"
    assert check_full_name(normalize_full_name(decomposed)) == []


@given(st.text(alphabet="ӘәҒғҚқҢңӨөҰұҮүҺһІіАаБбЖжЗз", min_size=2, max_size=40))
def test_any_kazakh_word_is_a_valid_name(word: str) -> None:
    assert check_full_name(normalize_full_name(word)) == []


@pytest.mark.parametrize(
    "email",
    ["a@b.kz", "ivan.petrov+lk@mail.kz", "x_y-z@sub.domain.com", "user@почта.рф", "o'brien@example.ie"],
)
def test_valid_emails(email: str) -> None:
    assert check_email(normalize_email(email)) == []


@pytest.mark.parametrize(
    "email",
    ["", "plain", "@mail.kz", "ivan@", "ivan@mail", "ivan..petrov@mail.kz", ".ivan@mail.kz", "a b@mail.kz",
     "ivan@-mail.kz", "ivan@mail.k", "i@" + "a" * 250 + ".kz"],
)  # fmt: skip
def test_invalid_emails(email: str) -> None:
    assert check_email(normalize_email(email)) != []


def test_email_identity_is_case_insensitive() -> None:
    assert normalize_email("  Ivan.Petrov@MAIL.KZ ") == "Ivan.Petrov@mail.kz"
    assert email_key("Ivan.Petrov@MAIL.KZ") == email_key("ivan.petrov@mail.kz")
    assert mask_email("ivan.petrov@mail.kz") == "i***v@mail.kz"
    assert mask_email("ab@mail.kz") == "a***@mail.kz"


@pytest.mark.parametrize(
    ("header", "language"),
    [
        (None, "ru"),
        ("", "ru"),
        ("kk-KZ,kk;q=0.9,ru;q=0.8", "kk"),
        ("en-US,en;q=0.9", "en"),
        ("de-DE,de;q=0.9", "ru"),
        ("de;q=1.0, en;q=0.5, kk;q=0.7", "kk"),
        ("kk;q=0, en", "en"),
        ("*", "ru"),
    ],
)
def test_language_from_accept_language(header: str | None, language: str) -> None:
    assert from_accept_language(header) == language


def test_the_aggregate_folds_its_events() -> None:
    uid, change = uuid.uuid4(), uuid.uuid4()
    expires = datetime(2025, 1, 1, tzinfo=UTC)
    events = [
        UserRegistered(user_id=uid, email="a@mail.kz", full_name="Ким Анна", language="ru"),
        FullNameChanged(user_id=uid, full_name="Ким Анна Сергеевна"),
        EmailChangeRequested(user_id=uid, change_id=change, new_email="b@mail.kz", expires_at=expires),
        EmailChanged(user_id=uid, change_id=change, old_email="a@mail.kz", new_email="b@mail.kz"),
        LanguageChanged(user_id=uid, language="kk"),
        PasswordChanged(user_id=uid, via="change"),
    ]
    state = domain.fold(events)
    assert state == domain.User(uid, "b@mail.kz", "Ким Анна Сергеевна", "kk", True, 6)
    assert domain.fold(events[:1]) == domain.User(uid, "a@mail.kz", "Ким Анна", "ru", False, 1)
    reset = domain.fold([events[0], PasswordChanged(user_id=uid, via="reset")])
    assert reset is not None and reset.email_verified
    with pytest.raises(ValueError, match="before UserRegistered"):
        domain.fold(events[1:])


def test_decisions() -> None:
    uid = uuid.uuid4()
    user = domain.User(uid, "a@mail.kz", "Ким Анна", "ru", False, 1)
    with pytest.raises(InvalidInput) as invalid:
        domain.validate_registration("nope", "short", "1", "ru")
    assert {v.field for v in invalid.value.violations} == {"email", "password", "full_name"}
    with pytest.raises(EmailUnchanged):
        domain.validate_new_email(user, " A@MAIL.KZ ")
    assert domain.validate_new_email(user, "B@Mail.KZ") == "B@mail.kz"
    with pytest.raises(InvalidInput) as mismatch:
        domain.validate_new_password(user, "Новый-пароль-1", confirmation="Новый-пароль-2")
    assert [v.code for v in mismatch.value.violations] == ["password_confirmation_mismatch"]
    # Saving what is already there appends nothing; only real changes become events.
    assert domain.change_profile(user, full_name="Ким Анна", language="ru") == []
    assert domain.change_profile(user, full_name="Ким Анна", language="kk") == [
        LanguageChanged(user_id=uid, language="kk")
    ]
    assert domain.confirm_email_change(user, uuid.uuid4(), "A@mail.kz") == []
