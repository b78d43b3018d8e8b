"""Translations of the e-mails (ru, kk, en) from gettext catalogs, loaded with Babel at runtime.

The catalogs are the `.po` files in `locales/<lang>/LC_MESSAGES/messages.po`. They are read with
`babel.messages.pofile.read_po` and compiled in memory (`write_mo`) the first time a language is used,
so there is no compile step and no `.mo` file in the repository. Message ids are the English texts;
`en` has its own catalog too, so wording can change without touching the code.
"""

from __future__ import annotations

import functools
from datetime import datetime
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from identity.domain.languages import LANGUAGES, Language

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
DOMAIN = "messages"
ALMATY = ZoneInfo("Asia/Almaty")


def catalog_path(language: Language) -> Path:
    return LOCALES_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@functools.cache
def translations(language: Language) -> Translations:
    if language not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r}")
    with catalog_path(language).open("rb") as fh:
        catalog = read_po(fh, locale=language, domain=DOMAIN)
    compiled = BytesIO()
    write_mo(compiled, catalog)  # fuzzy entries are left out, as msgfmt does
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def format_local_time(moment: datetime, language: Language) -> str:
    """`26 ноября 2025, 14:05`: Almaty time, month name in the language."""
    return format_datetime(moment, "d MMMM y, HH:mm", tzinfo=ALMATY, locale=language)
