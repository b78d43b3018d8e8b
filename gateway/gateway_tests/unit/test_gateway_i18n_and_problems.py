"""Languages, catalogs and problem documents (pure: no services)."""

from __future__ import annotations

import pytest

from gateway import i18n_tools
from gateway.adapters.upstream import UpstreamProblem
from gateway.i18n import catalogs, negotiate, parse_language
from gateway.problems import PROBLEM_TEXTS, field_message, localize_upstream, problem_body


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "ru"),
        ("", "ru"),
        ("kk", "kk"),
        ("kk-KZ,kk;q=0.9", "kk"),
        ("en-US,en;q=0.9,ru;q=0.8", "en"),
        ("de-DE,de;q=0.9", "ru"),
        ("de, en;q=0.5, kk;q=0.7", "kk"),
        ("ru;q=0, en", "en"),
        ("kz", "kk"),
        ("en;q=abc, kk", "kk"),
    ],
)
def test_accept_language_picks_one_of_ru_kk_en(header: str | None, expected: str) -> None:
    assert negotiate(header) == expected


def test_parse_language() -> None:
    assert parse_language("EN") == "en"
    assert parse_language("xx") is None
    assert parse_language(None) is None


def test_every_text_is_translated_into_kazakh_and_english() -> None:
    assert i18n_tools.problems() == []


def test_every_problem_code_has_texts_in_every_language() -> None:
    for code in PROBLEM_TEXTS:
        bodies = {
            lang: problem_body(400, code, lang, params={"service": "x", "minutes": 1})
            for lang in ("ru", "kk", "en")
        }
        assert bodies["ru"]["code"] == code
        assert bodies["en"]["title"] != bodies["ru"]["title"] != bodies["kk"]["title"]
        assert "%(" not in bodies["kk"]["detail"] and "%(" not in bodies["en"]["detail"]


def test_a_services_problem_keeps_its_russian_and_is_translated_by_code() -> None:
    upstream = UpstreamProblem(
        "identity",
        429,
        {
            "type": "urn:lk-portal:problem:too_many_attempts",
            "title": "Слишком много попыток",
            "status": 429,
            "detail": "Слишком много неудачных попыток. Повторите через 15 мин.",
            "code": "too_many_attempts",
            "errors": [
                {
                    "field": "password",
                    "message": "Пароль должен содержать не менее 10 символов",
                    "code": "password_too_short",
                }
            ],
        },
        {"Retry-After": "840"},
    )
    ru = localize_upstream(upstream, "ru")
    en = localize_upstream(upstream, "en")
    assert ru["detail"] == "Слишком много неудачных попыток. Повторите через 15 мин."
    assert en["detail"] == "Too many attempts. Try again in 14 min."
    assert en["errors"] == [
        {
            "field": "password",
            "message": "The password must have at least 10 characters",
            "code": "password_too_short",
        }
    ]
    assert ru["status"] == en["status"] == 429 and ru["code"] == "too_many_attempts"


def test_unknown_codes_fall_back_to_a_text_per_status() -> None:
    upstream = UpstreamProblem("ledger", 409, {"code": "something_new", "detail": "Что-то новое"}, {})
    assert localize_upstream(upstream, "ru")["detail"] == "Что-то новое"
    assert localize_upstream(upstream, "en")["title"] == "Conflict"


def test_field_messages_in_english_from_pydantic_types_are_replaced() -> None:
    assert field_message("missing", "Field required", "ru") == "Обязательное поле"
    assert field_message("missing", None, "kk") == "Міндетті өріс"
    assert field_message(None, "whatever", "en") == "Invalid value"


def test_catalog_formats_parameters() -> None:
    assert catalogs().gettext("Лицевой счёт %(no)s удалён из списка", "en", no="123") == (
        "Personal account 123 was removed from the list"
    )
