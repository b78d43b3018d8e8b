"""Bad input at the public API and the portal: oversized bodies, wrong content types, invalid UTF-8, NUL
bytes, dates far in the future and the past, amounts with three decimals, negative or zero, account numbers
with letters, hostile JSON. Every case gets a clear 4xx problem in Russian (the default language),
never a 5xx, and the customer's state is exactly what it was before.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.security.conftest import World
from tests.security.support import (
    CYRILLIC,
    PASSWORD,
    Gateway,
    csrf_of,
    fake_ip,
    problem,
    snapshot,
)

Case = tuple[str, str, dict[str, Any]]  # method, path, httpx request arguments


def _json(body: Any) -> dict[str, Any]:
    return {"json": body}


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway.client() as c:
        yield c


async def _refused(
    client: httpx.AsyncClient, cases: list[Case], auth: dict[str, str], expect: dict[str, int] | None = None
) -> list[dict[str, Any]]:
    """Sends every case; each must be a 4xx problem in Russian (status as expected when given)."""
    bodies = []
    for method, path, kwargs in cases:
        headers = {**auth, **kwargs.pop("headers", {})}
        r = await client.request(method, path, headers=headers, **kwargs)
        status = (expect or {}).get(path)
        try:
            bodies.append(problem(r, status))
        except AssertionError as exc:
            raise AssertionError(f"{method} {path} {kwargs!r:.300}: {exc}") from None
    return bodies


async def test_oversized_bodies_are_refused_before_anything_reads_them(
    client: httpx.AsyncClient, world: World
) -> None:
    alice = world.alice
    before = await snapshot(client, alice)
    path = f"/api/v1/accounts/{alice.account}/requests"
    big = {"category": "other", "text": "Я" * 200_000}
    r = await client.post(path, headers=alice.auth, json=big)
    assert problem(r, 413, "payload_too_large")["title"] == "Слишком большой запрос"

    # Streamed without a Content-Length (chunked): cut off while it arrives.
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"category": "other", "text": "'
        for _ in range(64):
            yield b"x" * 4096
        yield b'"}'

    r = await client.post(path, headers={**alice.auth, "Content-Type": "application/json"}, content=chunks())
    problem(r, 413, "payload_too_large")
    # A lying Content-Length larger than the limit: refused at once, whatever follows.
    r = await client.post(
        "/api/v1/auth/login",
        headers={"Content-Type": "application/json", "Content-Length": str(10**9)},
        content=b"{}",
    )
    problem(r, 413, "payload_too_large")
    r = await client.post(
        "/api/v1/auth/login",
        headers={"Content-Type": "application/json", "Content-Length": "abc"},
        content=b"{}",
    )
    problem(r, 400)
    # The same limit on the portal's forms: the error page, not a stack trace.
    page = await client.post("/login", data={"email": "a@b.kz", "password": "x" * 100_000})
    assert page.status_code == 413 and page.headers["content-type"].startswith("text/html")
    assert "Слишком большой запрос" in page.text
    # Just under the limit a long (but invalid) text is a validation problem: the limit isn't the check.
    r = await client.post(path, headers=alice.auth, json={"category": "other", "text": "Я" * 5000})
    assert problem(r, 422, "validation_error")["errors"][0]["field"] == "text"
    assert await snapshot(client, alice) == before


async def test_wrong_content_types_and_encodings(client: httpx.AsyncClient, world: World) -> None:
    alice = world.alice
    before = await snapshot(client, alice)
    path = f"/api/v1/accounts/{alice.account}/requests"
    body = (
        b'{"category": "other", "text": "\xd0\x9f\xd1\x80\xd0\xbe\xd0\xb2\xd0\xb5\xd1\x80\xd0\xba\xd0\xb0"}'
    )
    for content_type in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "text/json",
        "application/jsonp",
        "",
    ):
        headers = {**alice.auth, "Content-Type": content_type} if content_type else dict(alice.auth)
        r = await client.post(path, headers=headers, content=body)
        try:
            body_ = problem(r, 415, "unsupported_media_type")
        except AssertionError as exc:
            raise AssertionError(f"Content-Type {content_type!r}: {exc}") from None
        assert "JSON" in body_["detail"]
    # A JSON type with parameters or a +json suffix is JSON.
    for content_type in ("application/json; charset=utf-8", "application/problem+json"):
        r = await client.post(path, headers={**alice.auth, "Content-Type": content_type}, content=b"{}")
        problem(r, 422, "validation_error")

    # Not UTF-8: Latin-1, UTF-16, a lone continuation byte, an overlong encoding, a surrogate's bytes.
    for raw in (
        '{"category": "other", "text": "Проверка"}'.encode("cp1251"),
        '{"category": "other", "text": "x"}'.encode("utf-16"),
        b'{"category": "other", "text": "\x80"}',
        b'{"category": "other", "text": "\xc0\xaf"}',
        b'{"category": "other", "text": "\xed\xa0\x80"}',
    ):
        r = await client.post(path, headers={**alice.auth, "Content-Type": "application/json"}, content=raw)
        problem(r, 400, "invalid_encoding")
    # Valid UTF-8 JSON whose escapes decode to a lone surrogate (not a character; can't be stored).
    r = await client.post(
        path,
        headers={**alice.auth, "Content-Type": "application/json"},
        content=b'{"category": "other", "text": "bad \\ud800 half"}',
    )
    problem(r, 422, "validation_error")
    # Broken JSON, JSON of the wrong shape, JSON nested deeper than any parser should follow.
    for raw in (
        b'{"category": "other", "text": ',
        b"[]",
        b'"text"',
        b"null",
        b"1e999999",
        b"[" * 30_000 + b"]" * 30_000,
        b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    ):
        r = await client.post(path, headers={**alice.auth, "Content-Type": "application/json"}, content=raw)
        try:
            problem(r)
        except AssertionError as exc:
            raise AssertionError(f"{raw[:40]!r}: {exc}") from None
    assert await snapshot(client, alice) == before


async def test_nul_and_control_characters_in_every_kind_of_field(
    client: httpx.AsyncClient, world: World, gateway: Gateway
) -> None:
    alice = world.alice
    before = await snapshot(client, alice)
    no = alice.account
    nul = "\x00"
    cases: list[Case] = [
        ("POST", "/api/v1/auth/login", _json({"email": f"a{nul}@example.kz", "password": PASSWORD})),
        ("POST", "/api/v1/auth/login", _json({"email": alice.email, "password": f"pass{nul}word"})),
        (
            "POST",
            "/api/v1/auth/register",
            _json({"email": f"x{nul}@example.kz", "password": PASSWORD, "full_name": "Тест Тестович"}),
        ),
        (
            "POST",
            "/api/v1/auth/register",
            _json({"email": "nul@example.kz", "password": PASSWORD, "full_name": f"Тест{nul}Тестович"}),
        ),
        ("POST", "/api/v1/auth/password-reset", _json({"email": f"{alice.email}{nul}"})),
        ("POST", "/api/v1/auth/refresh", _json({"refresh_token": f"{alice.refresh_token}{nul}"})),
        ("PATCH", "/api/v1/me", _json({"full_name": f"Ахметова{nul}Алия"})),
        ("PATCH", "/api/v1/me", _json({"full_name": "Ахметова\x1bАлия"})),
        ("POST", f"/api/v1/accounts/{no}/requests", _json({"category": "other", "text": f"Текст{nul}"})),
        ("POST", f"/api/v1/accounts/{no}/requests", _json({"category": f"other{nul}", "text": "Текст"})),
        ("PUT", f"/api/v1/accounts/{no}/ebill", _json({"email": f"e{nul}@example.kz"})),
        (
            "POST",
            "/api/v1/accounts",
            _json({"account_no": f"{no}{nul}", "last_payment_month": "2025-01", "last_payment_amount": "1.00"}),
        ),
        ("GET", f"/api/v1/accounts/{no}/payments?from=2025-01-01%00", {}),
        ("GET", f"/api/v1/accounts/{no}/services?from=2025-01%00", {}),
        ("GET", f"/api/v1/accounts/{no}%00/payments", {}),
        ("GET", f"/api/v1/accounts/{no}/receipts/2025-01%00", {}),
        ("POST", f"/api/v1/accounts/{no}/requests", {"json": {"category": "other", "text": "Текст"},
                                                     "headers": {"Idempotency-Key": f"key{nul}"}}),
    ]  # fmt: skip
    bodies = await _refused(client, cases, alice.auth)
    # The field is named and the message says what is wrong (not "internal error").
    text_fields = [b for b in bodies if b["code"] == "validation_error" and b["errors"]]
    assert len(text_fields) >= 10
    assert any(e.get("code") == "control_characters" for b in text_fields for e in b["errors"])
    assert all(b["status"] != 500 for b in bodies)
    # The portal's forms: NUL is dropped, the form is processed normally (no 500).
    async with gateway.client() as portal:
        token = csrf_of((await portal.get("/login")).text)
        r = await portal.post(
            "/login",
            data={
                "csrf_token": token,
                "email": f"nobody-{uuid.uuid4().hex[:8]}@example.kz{nul}",
                "password": f"x{nul}",
            },
        )
        assert r.status_code == 200 and "Неверный e-mail или пароль" in r.text
    assert await snapshot(client, alice) == before


async def test_identity_and_accounts_answer_nul_with_a_russian_422_themselves(world: World) -> None:
    """The services behind the gateway refuse NUL too (PostgreSQL would answer it with an error)."""
    identity = "http://127.0.0.1:8001/internal/v1"
    accounts = "http://127.0.0.1:8002/internal/v1"
    async with httpx.AsyncClient(timeout=30, headers={"X-Forwarded-For": fake_ip()}) as c:
        for path, body in (
            ("/auth/login", {"email": "nul\x00@example.kz", "password": "whatever-123"}),
            ("/auth/login", {"email": "nul@example.kz\x00", "password": "whatever-123"}),
            ("/auth/password-reset", {"email": "nul\x00@example.kz"}),
            ("/auth/register", {"email": "n\x00@example.kz", "password": PASSWORD, "full_name": "Тест Тест"}),
        ):
            r = await c.post(identity + path, json=body)
            assert r.status_code == 422, (path, r.status_code, r.text)
            errors = r.json()["errors"]
            assert errors and all("управляющие символы" in e["message"] for e in errors), errors
            assert errors[0]["code"] == "control_characters"
        r = await c.post(
            f"{accounts}/accounts/{world.alice.account}/requests",
            headers=world.alice.auth,
            json={"category": "other", "text": "a\x00b"},
        )
        assert r.status_code == 422, r.text
        assert r.json()["errors"] == [
            {
                "field": "text",
                "message": "Поле содержит недопустимые управляющие символы",
                "code": "control_characters",
            }
        ]
        # Field errors of accounts are Russian, with a code the gateway translates (never pydantic's English).
        r = await c.post(
            f"{accounts}/accounts",
            headers=world.alice.auth,
            json={"account_no": "12AB", "last_payment_month": "2025-13", "last_payment_amount": "1.005"},
        )
        assert r.status_code == 422, r.text
        errors = {e["field"]: e for e in r.json()["errors"]}
        assert errors["account_no"]["message"] == "Неверный формат"
        assert errors["last_payment_month"]["code"] == "string_pattern_mismatch"
        assert errors["last_payment_amount"] == {
            "field": "last_payment_amount",
            "message": "Не более двух знаков после запятой",
            "code": "decimal_max_places",
        }


async def test_dates_far_in_the_future_and_the_past(client: httpx.AsyncClient, world: World) -> None:
    alice = world.alice
    before = await snapshot(client, alice)
    no = alice.account
    for query in (
        "from=0001-01-01&to=9999-12-31",
        "from=9999-12-31&to=0001-01-01",
        "from=1900-01-01&to=1900-01-31",
        "from=2999-01-01",
    ):
        r = await client.get(f"/api/v1/accounts/{no}/payments?{query}", headers=alice.auth)
        assert r.status_code < 500, (query, r.text)
        if r.status_code >= 400:
            problem(r)
    for query in ("from=1900-01&to=2199-12", "from=2199-12&to=1900-01", "from=2100-01"):
        for tail in ("services", "receipts", "services/electricity/statement"):
            r = await client.get(f"/api/v1/accounts/{no}/{tail}?{query}", headers=alice.auth)
            assert r.status_code < 500, (tail, query, r.text)
            if r.status_code >= 400:
                problem(r)
    cases: list[Case] = []
    for day in (
        "9999-12-31",
        "0001-01-01",
        "2999-01-01",
        "1900-01-01",
        "2025-02-30",
        "2025-13-01",
        "10000-01-01",
        "-2025-01-01",
        "2025-1-1",
        "20250101",
        "2025-01-01T00:00:00",
    ):
        cases += [
            ("POST", f"/api/v1/accounts/{no}/readings", _json({"reading_date": day, "value": "1500.00"})),
            (
                "POST",
                f"/api/v1/accounts/{no}/calculation",
                _json({"reading_date": day, "reading_value": "1500.00"}),
            ),
        ]
    # Unix times and datetimes are not dates (pydantic alone would take `0` for 1970-01-01).
    for query in ("to=0", "from=1735689600", "to=2025-01-01T00:00:00", "from=2025-01-01T10:00:00Z", "to=1e9"):
        cases.append(("GET", f"/api/v1/accounts/{no}/payments?{query}", {}))
    for day_value in (0, 1735689600, 1.5, True):
        cases.append(
            (
                "POST",
                f"/api/v1/accounts/{no}/readings",
                _json({"reading_date": day_value, "value": "1500.00"}),
            )
        )
    for period in ("0000-01", "9999-12", "2025-00", "2025-13", "1899-12", "2200-01", "2025-1"):
        cases += [
            ("GET", f"/api/v1/accounts/{no}/services?from={period}", {}),
            ("GET", f"/api/v1/accounts/{no}/receipts/{period}", {}),
            (
                "POST",
                "/api/v1/accounts",
                _json({"account_no": no, "last_payment_month": period, "last_payment_amount": "1.00"}),
            ),
        ]
    await _refused(client, cases, alice.auth)
    # A quote across centuries: refused (no tariff so long ago) or rated, never a server error or a hang.
    for previous, current in (
        ("0001-01-01", "9999-12-31"),
        ("1900-01-01", "1900-02-01"),
        ("2025-01-01", "9999-01-01"),
        ("2025-02-01", "2025-01-01"),
    ):
        r = await client.post(
            "/api/v1/tariffs/quote",
            json={
                "tariff_option": "tiered",
                "residents": 2,
                "previous": {"date": previous, "value": "100.00"},
                "current": {"date": current, "value": "300.00"},
            },
        )
        assert r.status_code < 500, (previous, current, r.text)
        if r.status_code >= 400:
            problem(r)
    assert await snapshot(client, alice) == before  # fmt: skip


async def test_amounts_with_three_decimals_negative_zero_and_not_numbers(
    client: httpx.AsyncClient, world: World
) -> None:
    alice, account = world.alice, world.unlinked
    before = await snapshot(client, alice)
    cases: list[Case] = []
    for amount in (
        "4250.001",
        "2750.255",
        "-2750.25",
        "0",
        "0.00",
        "-0.00",
        "2750,25",
        "NaN",
        "Infinity",
        "-Infinity",
        "1e400",
        "99999999999999999.00",
        "",
        " ",
        "2 750.25",
        "0x10",
        0.1 + 0.2,
        -5,
        0,
        True,
        None,
        [],
        {},
    ):
        cases.append(("POST", "/api/v1/accounts", _json(account.proof(last_payment_amount=amount))))  # type: ignore[arg-type]
    for value in ("1500.001", "-1.00", "-0.01", "NaN", "1e400", "abc", 12.345, True):
        cases += [
            (
                "POST",
                f"/api/v1/accounts/{alice.account}/readings",
                _json({"reading_date": "2025-01-31", "value": value}),
            ),
            (
                "POST",
                f"/api/v1/accounts/{alice.account}/calculation",
                _json({"reading_date": "2025-01-31", "reading_value": value}),
            ),
            (
                "POST",
                "/api/v1/tariffs/quote",
                _json(
                    {
                        "tariff_option": "flat",
                        "residents": 1,
                        "previous": {"date": "2025-01-01", "value": "10.00"},
                        "current": {"date": "2025-02-01", "value": value},
                    }
                ),
            ),
        ]
    for residents in (-1, 101, 10**20, 1.5, "two"):
        cases.append(
            (
                "POST",
                "/api/v1/tariffs/quote",
                _json(
                    {
                        "tariff_option": "flat",
                        "residents": residents,
                        "previous": {"date": "2025-01-01", "value": "10.00"},
                        "current": {"date": "2025-02-01", "value": "20.00"},
                    }
                ),
            )
        )
    bodies = await _refused(client, cases, alice.auth)
    # A malformed proof is a validation problem, never a (counted) failed proof.
    assert all(b["code"] == "validation_error" for b in bodies), [b["code"] for b in bodies]
    assert {e["field"] for b in bodies[:5] for e in b["errors"]} == {"last_payment_amount"}
    # Nothing was linked: the list is the same, and the account stays unreachable.
    assert await snapshot(client, alice) == before
    r = await client.get(f"/api/v1/accounts/{account.account_no}", headers=alice.auth)
    problem(r, 404, "account_not_found")  # fmt: skip


async def test_account_numbers_with_letters_and_other_shapes(client: httpx.AsyncClient, world: World) -> None:
    alice = world.alice
    before = await snapshot(client, alice)
    real = alice.account
    shapes = [
        real[:5] + "AB" + real[7:], real[:-1] + "O", "ABCDEFGHIJ", "１２３４５６７８９０", real + "0", real[:9],
        f" {real}", f"{real} ", "-" + real[1:], "+" + real[1:], real[:6] + "." + real[7:], "0x" + real[2:],
        "٠١٢٣٤٥٦٧٨٩", "1e10", "",
    ]  # fmt: skip
    cases: list[Case] = []
    for shape in shapes:
        cases.append(
            ("POST", "/api/v1/accounts", _json({"account_no": shape, "last_payment_month": "2025-01", "last_payment_amount": "100.00"}))
        )  # fmt: skip
    bodies = await _refused(client, cases, alice.auth)
    assert all(b["code"] == "validation_error" and b["errors"][0]["field"] == "account_no" for b in bodies)
    # In a path: the same 404 as an account that doesn't exist (so nothing is learned from the shape).
    reference = problem(
        await client.get(f"/api/v1/accounts/{uuid.uuid4().int % 10**12:012d}", headers=alice.auth), 404
    )
    for shape in (s for s in shapes if s and "/" not in s):
        for tail in ("", "/payments", "/readings", "/requests", "/receipts", "/ebill"):
            r = await client.get(f"/api/v1/accounts/{shape}{tail}", headers=alice.auth)
            assert r.status_code == 404, (shape, tail, r.text)
            assert r.json() == reference, (shape, tail)
    assert await snapshot(client, alice) == before


async def test_refusals_speak_the_callers_language(client: httpx.AsyncClient, world: World) -> None:
    """The same refusals in Kazakh and English: every title, detail and field message translated."""
    alice = world.alice
    path = f"/api/v1/accounts/{alice.account}/requests"
    cases: list[Case] = [
        ("POST", path, {"json": {"category": "other", "text": "Я" * 100_000}}),
        ("POST", path, {"content": b"text", "headers": {"Content-Type": "text/plain"}}),
        ("POST", path, {"content": b'{"text": "\xff"}', "headers": {"Content-Type": "application/json"}}),
        ("POST", path, {"json": {"category": "other", "text": "a\x00b"}}),
        ("POST", "/api/v1/accounts", {"json": {"account_no": "12AB", "last_payment_month": "2025-13", "last_payment_amount": "1.005"}}),
        ("POST", f"/api/v1/accounts/{alice.account}/readings", {"json": {"reading_date": "9999-12-31", "value": "-1"}}),
    ]  # fmt: skip
    for lang in ("ru", "kk", "en"):
        for method, url, kwargs in cases:
            headers = {**alice.auth, "Accept-Language": lang, **kwargs.get("headers", {})}
            args = {k: v for k, v in kwargs.items() if k != "headers"}
            r = await client.request(method, url, headers=headers, **args)
            assert 400 <= r.status_code < 500 and r.headers["content-language"] == lang, (lang, url, r.text)
            body = r.json()
            texts = [body["title"], body["detail"], *(e["message"] for e in body["errors"])]
            if lang == "en":
                assert not any(CYRILLIC.search(t) for t in texts), (url, body)
            elif lang == "ru":
                assert all(CYRILLIC.search(t) for t in texts), (url, body)
            else:  # Kazakh: Cyrillic with its own letters, and not the Russian text
                assert all(CYRILLIC.search(t) for t in texts), (url, body)
            if lang != "ru":
                assert all(t != "Недопустимое значение" for t in texts), (url, body)
