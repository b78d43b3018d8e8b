"""Maintenance of the gateway's gettext catalogs (Babel).

    uv run python -m gateway.i18n_tools update   # extract texts, merge them into ru/kk/en messages.po
    uv run python -m gateway.i18n_tools check    # every text translated in kk and en (CI runs this as a test)

Sources: the gateway's Python (`_`, `N_`) and the portal's Jinja2 templates. Russian is the source
language: its catalog stays untranslated (the message ids are the Russian texts).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from gateway.i18n import LANGUAGES, LOCALES_DIR

PACKAGE_DIR = Path(__file__).resolve().parent
METHOD_MAP = [("**/templates/**.html", "jinja2.ext:babel_extract"), ("**.py", "python")]
OPTIONS_MAP = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "false"}}
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def extract() -> Catalog:
    template = Catalog(project="lk-portal gateway", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
        PACKAGE_DIR, METHOD_MAP, OPTIONS_MAP, keywords={"_": None, "N_": None, "gettext": None}
    ):
        if not message:
            continue
        flags = ("python-format",) if isinstance(message, str) and "%(" in message else ()
        template.add(
            message, None, [(filename, lineno)], auto_comments=comments, context=context, flags=flags
        )
    return template


def _path(lang: str) -> Path:
    return LOCALES_DIR / lang / "LC_MESSAGES" / "messages.po"


def update() -> None:
    template = extract()
    for lang in LANGUAGES:
        path = _path(lang)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            with path.open("rb") as fp:
                catalog = read_po(fp, locale=lang)
            catalog.update(template, no_fuzzy_matching=True)
            catalog.obsolete.clear()
        else:
            catalog = Catalog(locale=lang, project="lk-portal gateway", charset="utf-8")
            catalog.update(template, no_fuzzy_matching=True)
        with path.open("wb") as fp:
            write_po(fp, catalog, width=0, omit_header=False, sort_output=False, include_previous=False)
        print(f"{path.relative_to(PACKAGE_DIR)}: {len(catalog)} messages")


def problems() -> list[str]:
    """What is wrong with the catalogs: missing or fuzzy translations, placeholders that don't match."""
    found: list[str] = []
    template = extract()
    wanted = {m.id for m in template if m.id}
    for lang in LANGUAGES:
        with _path(lang).open("rb") as fp:
            catalog = read_po(fp, locale=lang)
        have = {m.id for m in catalog if m.id}
        found += [f"{lang}: not in the catalog: {mid!r}" for mid in sorted(wanted - have, key=str)]
        if lang == "ru":
            continue
        for message in catalog:
            if not message.id:
                continue
            if not message.string:
                found.append(f"{lang}: untranslated: {message.id!r}")
            elif message.fuzzy:
                found.append(f"{lang}: fuzzy: {message.id!r}")
            elif set(_PLACEHOLDER.findall(str(message.id))) != set(_PLACEHOLDER.findall(str(message.string))):
                found.append(f"{lang}: placeholders differ: {message.id!r}")
    return found


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "check"
    if command == "update":
        update()
        return 0
    issues = problems()
    for issue in issues:
        print(issue)
    return 1 if issues else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
