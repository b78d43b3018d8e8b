"""The full name (ФИО): letters of any script, spaces, hyphens and apostrophes.

Kazakh (Әә Ғғ Ққ Ңң Өө Ұұ Үү Һһ Іі), Russian, Latin and other alphabets are all letters. Each word is
letters joined by single hyphens or apostrophes ("Жан-Поль", "O'Brien", "Д’Артаньян"). Whitespace is
normalized: runs become one space, none at the ends; the text is NFC-normalized.
"""

from __future__ import annotations

import re
import unicodedata

from identity.domain.errors import Violation

MIN_LENGTH = 2
MAX_LENGTH = 150
APOSTROPHES = "'’ʼ"
_JOINERS = "-" + APOSTROPHES


def _is_letter(ch: str) -> bool:
    return ch.isalpha() or unicodedata.category(ch) in ("Mn", "Mc")


def normalize_full_name(raw: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFC", raw)).strip()


def _word_ok(word: str) -> bool:
    if not word or not word[0].isalpha() or not _is_letter(word[-1]):
        return False
    previous_joiner = False
    for ch in word:
        if ch in _JOINERS:
            if previous_joiner:
                return False
            previous_joiner = True
        elif _is_letter(ch):
            previous_joiner = False
        else:
            return False
    return True


def check_full_name(name: str, field: str = "full_name") -> list[Violation]:
    """Checks an already normalized name (see `normalize_full_name`)."""
    if len(name) < MIN_LENGTH:
        return [
            Violation(field, "full_name_too_short", f"ФИО должно содержать не менее {MIN_LENGTH} символов")
        ]
    if len(name) > MAX_LENGTH:
        return [Violation(field, "full_name_too_long", f"ФИО не может быть длиннее {MAX_LENGTH} символов")]
    if any(not (_is_letter(ch) or ch == " " or ch in _JOINERS) for ch in name):
        return [
            Violation(
                field,
                "full_name_invalid_characters",
                "ФИО может содержать только буквы, пробелы, дефисы и апострофы",
            )
        ]
    if not all(_word_ok(word) for word in name.split(" ")):
        return [
            Violation(
                field,
                "full_name_invalid_format",
                "Дефис и апостроф допустимы только между буквами",
            )
        ]
    return []
