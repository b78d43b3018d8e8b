"""Every field-error code identity and accounts answer with has a text in the gateway's catalogs, so a
field message is translated into Kazakh and English (not replaced by the generic one)."""

from __future__ import annotations

from gateway.i18n import catalogs
from gateway.problems import VIOLATION_TEXTS
from identity.api import _PYDANTIC_MESSAGES
from service_runtime.problems import FIELD_MESSAGES


def test_every_service_field_code_is_translated() -> None:
    codes = set(FIELD_MESSAGES) | set(_PYDANTIC_MESSAGES)
    assert codes - set(VIOLATION_TEXTS) == set()
    for code in codes:
        ru = VIOLATION_TEXTS[code]
        for lang in ("kk", "en"):
            assert catalogs().gettext(ru, lang) != ru, (code, lang)
