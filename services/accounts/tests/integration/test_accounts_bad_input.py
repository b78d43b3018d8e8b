"""Bad input at accounts' internal API: field errors in Russian with a stable `code` (never pydantic's
English, never the input), NUL and lone surrogates refused before PostgreSQL sees them, non-ASCII digits
not taken for an account number, a non-positive amount not counted as a failed proof."""

from __future__ import annotations

import re
import uuid
from typing import Any

CYRILLIC = re.compile(r"[А-Яа-яЁё]")


async def test_field_errors_are_russian_with_codes_and_nothing_is_written(accounts: Any) -> None:
    user = uuid.uuid4()
    no = await accounts.open_paid_and_linked(user)
    cases: list[tuple[str, dict[str, Any], dict[str, str]]] = [
        (
            "/internal/v1/accounts",
            {"account_no": "12AB", "last_payment_month": "2025-13", "last_payment_amount": "1.005"},
            {"account_no": "string_pattern_mismatch", "last_payment_month": "string_pattern_mismatch",
             "last_payment_amount": "decimal_max_places"},
        ),
        (
            "/internal/v1/accounts",
            {"account_no": "١٢٣٤٥٦٧٨٩٠", "last_payment_month": "20٢٥-01", "last_payment_amount": "-5.00"},
            {"account_no": "string_pattern_mismatch", "last_payment_month": "string_pattern_mismatch",
             "last_payment_amount": "greater_than"},
        ),
        (
            "/internal/v1/accounts",
            {"account_no": no, "last_payment_month": "2025-04", "last_payment_amount": 12.5},
            {"last_payment_amount": "decimal_type"},
        ),
        ("/internal/v1/accounts", {"account_no": no, "last_payment_month": "2025-04", "last_payment_amount": "0"},
         {"last_payment_amount": "greater_than"}),
        ("/internal/v1/accounts", {"account_no": no, "last_payment_month": "2025-04", "last_payment_amount": "NaN"},
         {"last_payment_amount": "decimal_parsing"}),
        ("/internal/v1/accounts", {}, {"account_no": "missing", "last_payment_month": "missing", "last_payment_amount": "missing"}),
        (f"/internal/v1/accounts/{no}/requests", {"category": "other", "text": "a\x00b"}, {"text": "control_characters"}),
        (f"/internal/v1/accounts/{no}/requests", {"category": "other", "text": "bad \ud800 half"}, {"text": "string_unicode"}),
        (f"/internal/v1/accounts/{no}/requests", {"category": "other", "text": "   "}, {"text": "blank"}),
        (f"/internal/v1/accounts/{no}/requests", {"category": "spam", "text": "x" * 4001},
         {"category": "literal_error", "text": "string_too_long"}),
    ]  # fmt: skip
    for path, body, expected in cases:
        content = __import__("json").dumps(body).encode()
        r = await accounts.api.post(
            path, content=content, headers={**accounts.auth(user), "Content-Type": "application/json"}
        )
        assert r.status_code == 422, (body, r.text)
        problem = r.json()
        assert problem["code"] == "validation_error" and r.headers["content-type"].startswith(
            "application/problem+json"
        )
        got = {e["field"]: e["code"] for e in problem["errors"]}
        assert got == expected, (body, problem["errors"])
        for error in problem["errors"]:
            assert CYRILLIC.search(error["message"]), error
            assert "Value error" not in error["message"] and "should" not in error["message"]
            assert str(body.get(error["field"], "")) not in error["message"] or not body.get(error["field"])
    # None of it was a (counted) proof failure, none of it wrote a request.
    assert (
        await accounts.api.get(f"/internal/v1/accounts/{no}/requests", headers=accounts.auth(user))
    ).json() == []
    assert (
        await accounts.link(user, accounts.new_account_no(), "2025-01", "1.00")
    ).status_code == 422  # a real failure is still counted normally (not 429 after the 422s above)
