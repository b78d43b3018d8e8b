"""Small pure pieces of the portal: redirects, CSRF comparisons, display formats, user input."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from gateway.i18n import current_language
from gateway.portal.context import safe_next
from gateway.portal.pages import _decimal, months_back
from gateway.portal.render import date, money, period
from gateway.portal.security import same_origin, token_matches


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/accounts/123", "/accounts/123"),
        ("/a?b=c", "/a?b=c"),
        (None, "/"),
        ("", "/"),
        ("//evil.example/x", "/"),
        ("https://evil.example", "/"),
        ("/\\evil.example", "/"),
    ],
)
def test_only_local_paths_are_followed(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def _request(headers: dict[str, str]) -> Request:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/login",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "root_path": "",
        "query_string": b"",
    }
    return Request(scope)


def test_cross_site_posts_are_recognised() -> None:
    base = "https://lk.example.kz"
    assert same_origin(_request({}), base)
    assert same_origin(_request({"Origin": "https://lk.example.kz"}), base)
    assert same_origin(_request({"Origin": "http://127.0.0.1:8000"}), base)  # the request's own origin
    assert not same_origin(_request({"Origin": "https://evil.example"}), base)
    assert not same_origin(_request({"Origin": "null"}), base)
    assert not same_origin(_request({"Sec-Fetch-Site": "cross-site"}), base)
    assert same_origin(_request({"Sec-Fetch-Site": "same-origin"}), base)


def test_tokens_compare_exactly() -> None:
    assert token_matches("abc", "abc")
    assert not token_matches("abc", "abd")
    assert not token_matches("abc", None)
    assert not token_matches("abc", "")


def test_display_formats() -> None:
    current_language.set("ru")
    assert money("1520.4") == "1\u00a0520.40"
    assert money("-30.00") == "−30.00"
    assert money(None) == "—"
    assert date("2025-03-14") == "14.03.2025"
    assert date("2025-03-14T10:00:00+05:00") == "14.03.2025"
    assert period("2025-03") == "Март 2025"
    current_language.set("en")
    assert period("2025-03") == "March 2025"
    current_language.set("ru")


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("4250", "4250.00"),
        ("4 250,5", "4250.50"),
        ("4250.555", None),
        ("abc", None),
        ("", None),
        ("NaN", None),
    ],
)
def test_typed_amounts(typed: str, expected: str | None) -> None:
    assert _decimal(typed) == expected


def test_months_back() -> None:
    assert months_back("2025-03", 11) == "2024-04"
    assert months_back("2025-01", 1) == "2024-12"
