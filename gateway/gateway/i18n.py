"""Languages of the portal and the API: Russian (default, the source language), Kazakh and English.

Catalogs are gettext `.po` files in `gateway/locales/<lang>/LC_MESSAGES/messages.po`, read with Babel
and compiled in memory at start (no build step). Message ids are the Russian texts, so the Russian
catalog is the identity and the manual's labels stay visible in the templates. Update the catalogs
after changing texts: `uv run python -m gateway.i18n_tools update` (then translate the new entries).
"""

from __future__ import annotations

from contextvars import ContextVar
from io import BytesIO
from pathlib import Path
from typing import Any, Literal

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

Language = Literal["ru", "kk", "en"]
LANGUAGES: tuple[Language, ...] = ("ru", "kk", "en")
DEFAULT_LANGUAGE: Language = "ru"
LANGUAGE_NAMES: dict[Language, str] = {"ru": "Русский", "kk": "Қазақша", "en": "English"}
HTML_LANG: dict[Language, str] = {"ru": "ru", "kk": "kk", "en": "en"}
LOCALES_DIR = Path(__file__).resolve().parent / "locales"

current_language: ContextVar[Language] = ContextVar("current_language", default=DEFAULT_LANGUAGE)


def N_(message: str) -> str:
    """Marks a text for extraction; translated later, where the language is known."""
    return message


def parse_language(value: str | None) -> Language | None:
    if value is None:
        return None
    tag = value.strip().lower().replace("_", "-").split("-")[0]
    if tag == "kz":  # a common mistake for Kazakh
        tag = "kk"
    return tag if tag in LANGUAGES else None


def negotiate(accept_language: str | None) -> Language:
    """The best of ru/kk/en for an `Accept-Language` header (ru when nothing matches)."""
    if not accept_language:
        return DEFAULT_LANGUAGE
    choices: list[tuple[float, int, Language]] = []
    for index, part in enumerate(accept_language.split(",")):
        pieces = part.strip().split(";")
        lang = parse_language(pieces[0])
        if lang is None:
            continue
        quality = 1.0
        for param in pieces[1:]:
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            choices.append((-quality, index, lang))
    return sorted(choices)[0][2] if choices else DEFAULT_LANGUAGE


class Catalogs:
    def __init__(self, locales_dir: Path = LOCALES_DIR) -> None:
        self._translations: dict[Language, Translations] = {}
        for lang in LANGUAGES:
            path = locales_dir / lang / "LC_MESSAGES" / "messages.po"
            with path.open("rb") as fp:
                catalog = read_po(fp, locale=lang)
            buffer = BytesIO()
            write_mo(buffer, catalog)
            buffer.seek(0)
            self._translations[lang] = Translations(fp=buffer)

    def translations(self, lang: Language | None = None) -> Translations:
        return self._translations[lang or current_language.get()]

    def gettext(self, message: str, lang: Language | None = None, **params: Any) -> str:
        text = self.translations(lang).gettext(message)
        return text % params if params else text


_catalogs: Catalogs | None = None


def catalogs() -> Catalogs:
    global _catalogs
    if _catalogs is None:
        _catalogs = Catalogs()
    return _catalogs


def _(message: str, **params: Any) -> str:
    """Translates into the current request's language (`current_language`)."""
    return catalogs().gettext(message, **params)
