"""Helpers of the security suites: a gateway under test (in-process, or served by uvicorn for
schemathesis), customers with linked accounts seeded through the back-office topics, problem checks,
and snapshots of a customer's state (to prove a refused request wrote nothing).

The services run under honcho (`running_services`); the gateway under test is the current code with its
own Redis prefix and consumer group. Every client presents a made-up address in `X-Forwarded-For` (one
trusted proxy hop, as in production behind the ingress), so per-address limits never carry over.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import uvicorn
from fastapi import FastAPI

from gateway.api import create_app
from gateway.settings import GatewaySettings
from tests.browser.backoffice import EventWatch, Household, new_account_no, open_account, report_payment

PASSWORD = "Надёжный-пароль-2025"
BASE_URL = "http://gateway.test"
PROBLEM = "application/problem+json"
CYRILLIC = re.compile(r"[А-Яа-яЁё]")


def almaty_today() -> date:
    return datetime.now(ZoneInfo("Asia/Almaty")).date()


def fake_ip() -> str:
    """A made-up client address (uuid-based: no `random`, which Hypothesis objects to)."""
    n = uuid.uuid4().int
    return f"10.{n % 256}.{(n >> 8) % 256}.{(n >> 16) % 254 + 1}"


def new_email(tag: str = "sec") -> str:
    return f"{tag}-{uuid.uuid4().hex[:12]}@example.kz"


# --- the gateway under test ---------------------------------------------------------------------------
def gateway_settings(**overrides: Any) -> GatewaySettings:
    tag = uuid.uuid4().hex[:8]
    values: dict[str, Any] = {
        "redis_prefix": f"gwsec-{tag}:",
        "cache_consumer_group": f"gateway-sec-{tag}",
        "trusted_proxy_hops": 1,
        "public_base_url": BASE_URL,
        "cookie_secure": None,
        **overrides,
    }
    return GatewaySettings(**values)


@dataclass
class Gateway:
    app: FastAPI
    settings: GatewaySettings
    ip: str = field(default_factory=fake_ip)

    def client(self, *, ip: str | None = None, **headers: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url=BASE_URL,
            headers={"X-Forwarded-For": ip or self.ip, **headers},
            timeout=60,
        )


@contextlib.asynccontextmanager
async def running_gateway(**overrides: Any) -> AsyncIterator[Gateway]:
    settings = gateway_settings(**overrides)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield Gateway(app, settings)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def served_gateway(**overrides: Any) -> Iterator[str]:
    """The gateway in uvicorn on a thread of its own (for synchronous clients); yields its base URL."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    settings = gateway_settings(public_base_url=url, **overrides)
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the gateway did not start"
        time.sleep(0.1)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


# --- customers -----------------------------------------------------------------------------------------
@dataclass
class Customer:
    email: str
    token: str
    refresh_token: str
    user_id: str
    accounts: list[str] = field(default_factory=list)
    issued_at: float = field(default_factory=time.monotonic)

    async def refresh_if_old(self, client: httpx.AsyncClient, max_age_s: float = 180.0) -> None:
        """Access tokens live 5 minutes: session-long customers get a fresh one before a test."""
        if time.monotonic() - self.issued_at < max_age_s:
            return
        r = await client.post("/api/v1/auth/refresh", json={"refresh_token": self.refresh_token})
        assert r.status_code == 200, r.text
        self.token, self.refresh_token = r.json()["access_token"], r.json()["refresh_token"]
        self.issued_at = time.monotonic()

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def account(self) -> str:
        return self.accounts[0]


async def register(
    client: httpx.AsyncClient, email: str | None = None, full_name: str = "Сейтова Айгуль Маратовна"
) -> str:
    email = email or new_email()
    r = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "full_name": full_name}
    )
    assert r.status_code == 201, r.text
    return email


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    r = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def new_customer(client: httpx.AsyncClient, full_name: str = "Сейтова Айгуль Маратовна") -> Customer:
    email = await register(client, full_name=full_name)
    tokens = await login(client, email)
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200, me.text
    return Customer(email, tokens["access_token"], tokens["refresh_token"], me.json()["user_id"])


@dataclass
class SeededAccount:
    account_no: str
    household: Household
    payment_month: str
    payment_amount: str

    def proof(self, **changes: str) -> dict[str, str]:
        return {
            "account_no": self.account_no,
            "last_payment_month": self.payment_month,
            "last_payment_amount": self.payment_amount,
            **changes,
        }


async def seed_account(kafka_bootstrap: str, *, amount: str = "4250.00", **household: Any) -> SeededAccount:
    """A new account with one payment, through the back-office topics; returns once the services
    published them (accounts' AccountOpened, ledger's OpeningBalanceSet and PaymentReceived)."""
    today = almaty_today()
    paid_on = today.replace(day=1) - timedelta(days=20)
    home = Household(account_no=new_account_no(), opened_on=paid_on - timedelta(days=90), **household)
    async with EventWatch(kafka_bootstrap, ["accounts.events.v1", "ledger.events.v1"]) as watch:
        await open_account(kafka_bootstrap, home)
        await watch.wait_for("AccountOpened", account_no=home.account_no, timeout_s=180)
        await watch.wait_for("OpeningBalanceSet", account_no=home.account_no, timeout_s=180)
        await report_payment(kafka_bootstrap, home.account_no, amount, paid_on)
        await watch.wait_for("PaymentReceived", account_no=home.account_no, timeout_s=180)
    return SeededAccount(home.account_no, home, paid_on.strftime("%Y-%m"), amount)


async def link(client: httpx.AsyncClient, customer: Customer, account: SeededAccount) -> None:
    """Links the account (a few spaced tries: accounts' proof projection may trail the ledger's event;
    accounts allows 5 failures per user and account)."""
    for wait in (0.0, 2.0, 4.0, 8.0):
        await asyncio.sleep(wait)
        r = await client.post("/api/v1/accounts", headers=customer.auth, json=account.proof())
        if r.status_code == 201:
            customer.accounts.append(account.account_no)
            return
        assert r.status_code == 422, r.text
    raise AssertionError(f"could not link {account.account_no}")


async def wait_until_readable(client: httpx.AsyncClient, customer: Customer, account_no: str) -> None:
    """Until every service's projection knows the link (the gateway retries reads for 10 s itself)."""
    for tail in ("", "/payments", "/readings", "/receipts", "/requests", "/services", "/ebill"):
        for _ in range(60):
            r = await client.get(f"/api/v1/accounts/{account_no}{tail}", headers=customer.auth)
            if r.status_code == 200:
                break
            assert r.status_code == 404, (tail, r.status_code, r.text)
            await asyncio.sleep(1.0)
        else:
            raise AssertionError(f"{account_no}{tail} never became readable")


# --- checks --------------------------------------------------------------------------------------------
def problem(r: httpx.Response, status: int | None = None, code: str | None = None) -> dict[str, Any]:
    """A problem+json with every member, in Russian (the default language)."""
    if status is not None:
        assert r.status_code == status, (r.status_code, r.text[:500])
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:500])
    assert r.headers.get("content-type", "").startswith(PROBLEM), (r.headers, r.text[:300])
    body: dict[str, Any] = r.json()
    assert {"type", "title", "status", "detail", "code", "errors"} <= body.keys(), body
    assert body["status"] == r.status_code
    if code is not None:
        assert body["code"] == code, body
    assert r.headers.get("content-language", "ru") == "ru", r.headers
    assert CYRILLIC.search(body["title"]) and CYRILLIC.search(body["detail"]), body
    for error in body["errors"]:
        assert CYRILLIC.search(error["message"]), ("a field message not in Russian", error)
    return body


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def snapshot(client: httpx.AsyncClient, customer: Customer) -> dict[str, Any]:
    """Everything the customer can read: a refused write must leave all of it as it was."""
    state: dict[str, Any] = {}
    me = await client.get("/api/v1/me", headers=customer.auth)
    assert me.status_code == 200, me.text
    state["me"] = me.json()
    listed = await client.get("/api/v1/accounts", headers=customer.auth)
    assert listed.status_code == 200, listed.text
    state["accounts"] = listed.json()
    for no in customer.accounts:
        for tail in ("", "/requests", "/readings", "/ebill", "/payments"):
            r = await client.get(f"/api/v1/accounts/{no}{tail}", headers=customer.auth)
            assert r.status_code == 200, (tail, r.text)
            state[f"{no}{tail}"] = r.json()
    return state


async def eventually_true(check: Callable[[], Any], timeout_s: float = 120.0, every_s: float = 0.5) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await check():
        assert loop.time() < deadline, f"not reached within {timeout_s}s"
        await asyncio.sleep(every_s)


async def portal_login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    token = csrf_of((await client.get("/login")).text)
    r = await client.post("/login", data={"csrf_token": token, "email": email, "password": password})
    assert r.status_code == 303, (r.status_code, r.text[:300])
    return r
