"""The e-mail catalogs (ru, kk, en) are complete, and the messages say what they must and nothing secret."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po

import identity.application.mail as mail_module
from identity.application import mail
from identity.domain.languages import LANGUAGES, Language
from identity.i18n import catalog_path

PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")


def _source_ids() -> set[str]:
    path = Path(mail_module.__file__)
    return {str(message) for _, message, _, _ in extract_from_file("python", str(path))}


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalog_is_complete(language: Language) -> None:
    with catalog_path(language).open("rb") as fh:
        catalog = read_po(fh, locale=language)
    entries = {str(m.id): m for m in catalog if m.id}
    assert set(entries) == _source_ids(), "catalog and code differ: update the .po files"
    for msgid, entry in entries.items():
        assert entry.string, f"{language}: untranslated {msgid!r}"
        assert not entry.fuzzy, f"{language}: fuzzy {msgid!r}"
        assert sorted(PLACEHOLDER.findall(msgid)) == sorted(PLACEHOLDER.findall(str(entry.string))), msgid


MOMENT = datetime(2025, 3, 14, 9, 5, tzinfo=UTC)  # 14:05 in Almaty


@pytest.mark.parametrize(
    ("language", "subject", "when", "phrase"),
    [
        ("ru", "Ваш пароль изменён", "14 марта 2025, 14:05", "Если это были не вы"),
        ("kk", "Құпиясөзіңіз өзгертілді", "14 наурыз 2025, 14:05", "Егер бұл сіз болмасаңыз"),
        ("en", "Your password was changed", "14 March 2025, 14:05", "If it wasn't you"),
    ],
)
def test_password_notice_in_each_language(language: Language, subject: str, when: str, phrase: str) -> None:
    notice = mail.password_changed_mail(
        to="a@mail.kz",
        full_name="Ким Анна",
        language=language,
        changed_at=MOMENT,
        via="change",
        recovery_link="http://127.0.0.1:8000/reset-password",
    )
    assert notice.subject == subject and notice.language == language and not notice.sensitive
    assert when in notice.text and phrase in notice.text
    assert "http://127.0.0.1:8000/reset-password" in notice.text
    assert 'href="http://127.0.0.1:8000/reset-password"' in notice.html
    assert f'<html lang="{language}">' in notice.html


def test_html_is_escaped_and_links_carry_the_token() -> None:
    link = mail.portal_link("http://127.0.0.1:8000", "/reset-password", "a-b_c")
    assert link == "http://127.0.0.1:8000/reset-password?token=a-b_c"
    message = mail.password_reset_mail(
        to="a@mail.kz", full_name="<script>alert(1)</script>", language="ru", link=link, ttl_minutes=30
    )
    assert message.sensitive and message.kind == "password_reset"
    assert "<script>" not in message.html and "&lt;script&gt;" in message.html
    assert link in message.text and "30 мин." in message.text
    assert message.text.rstrip().endswith("отвечать на него не нужно.")
