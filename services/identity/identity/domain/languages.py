"""The languages of the portal: Russian (default), Kazakh, English."""

from __future__ import annotations

from typing import Literal

Language = Literal["ru", "kk", "en"]
LANGUAGES: tuple[Language, ...] = ("ru", "kk", "en")
DEFAULT_LANGUAGE: Language = "ru"


def is_language(value: str) -> bool:
    return value in LANGUAGES


def from_accept_language(header: str | None) -> Language:
    """The best supported language of an `Accept-Language` header (q-values respected), else Russian."""
    if not header:
        return DEFAULT_LANGUAGE
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if quality > 0 and primary:
            ranked.append((-quality, index, primary))
    for _, _, primary in sorted(ranked):
        if primary in LANGUAGES:
            return primary
    return DEFAULT_LANGUAGE
