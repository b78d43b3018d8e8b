"""The gateway on the real stack: every service runs under honcho (`running_services`), and the gateway
under test runs in-process (current code, its own settings), talking HTTP to the services on 8001–8005.

Each gateway gets its own Redis key prefix and consumer group, so tests don't see each other's cache,
sessions or rate limits. Clients present a fresh made-up client address (`X-Forwarded-For`, trusted
one hop), so identity's brute-force lockout by address never carries over between tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI

from gateway.api import create_app
from gateway.settings import GatewaySettings
from tests.browser.backoffice import EventWatch, Household, new_account_no, open_account, report_payment

PASSWORD = "Надёжный-пароль-2025"
BASE_URL = "http://gateway.test"


def almaty_today() -> date:
    return datetime.now(ZoneInfo("Asia/Almaty")).date()


def fake_ip() -> str:
    """A made-up private client address (uuid-based: no `random`, which Hypothesis objects to)."""
    n = uuid.uuid4().int
    return f"10.{n % 256}.{(n >> 8) % 256}.{(n >> 16) % 254 + 1}"


def new_email(tag: str = "gw") -> str:
    return f"{tag}-{uuid.uuid4().hex[:12]}@example.kz"


@dataclass
class Gateway:
    app: FastAPI
    settings: GatewaySettings
    ip: str

    def client(self, *, ip: str | None = None, **headers: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app)
        return httpx.AsyncClient(
            transport=transport,
            base_url=BASE_URL,
            headers={"X-Forwarded-For": ip or self.ip, **headers},
            timeout=30,
        )


GatewayFactory = Callable[..., contextlib.AbstractAsyncContextManager[Gateway]]


@pytest.fixture
def make_gateway(running_services: str, stack_env: dict[str, str]) -> GatewayFactory:
    @contextlib.asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[Gateway]:
        tag = uuid.uuid4().hex[:8]
        values: dict[str, Any] = {
            "redis_prefix": f"gwtest-{tag}:",
            "cache_consumer_group": f"gateway-test-{tag}",
            "trusted_proxy_hops": 1,
            "public_base_url": BASE_URL,
            "cookie_secure": None,  # from the URL: plain http here, so not Secure
            **overrides,
        }
        settings = GatewaySettings(**values)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            yield Gateway(app, settings, fake_ip())

    return make


@pytest.fixture
async def gateway(make_gateway: GatewayFactory) -> AsyncIterator[Gateway]:
    async with make_gateway() as gw:
        yield gw


async def register_and_login(client: httpx.AsyncClient, email: str | None = None) -> dict[str, str]:
    email = email or new_email()
    r = await client.post(
        "/api/v1/auth/register",
        json={"email": email, "password": PASSWORD, "full_name": "Сейтова Айгуль Маратовна"},
    )
    assert r.status_code == 201, r.text
    r = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}", "email": email}


def auth(tokens: dict[str, str]) -> dict[str, str]:
    return {"Authorization": tokens["Authorization"]}


@dataclass
class SeededAccount:
    account_no: str
    household: Household
    payment_month: str
    payment_amount: str


async def seed_account(kafka_bootstrap: str, *, amount: str = "4250.00") -> SeededAccount:
    """A new account with one payment, through the back-office topics; returns once the services
    published them (accounts' AccountOpened, ledger's PaymentReceived)."""
    today = almaty_today()
    paid_on = today.replace(day=1) - timedelta(days=20)
    household = Household(account_no=new_account_no(), opened_on=paid_on - timedelta(days=90))
    async with EventWatch(kafka_bootstrap, ["accounts.events.v1", "ledger.events.v1"]) as watch:
        await open_account(kafka_bootstrap, household)
        await watch.wait_for("AccountOpened", account_no=household.account_no)
        # The payment only once the ledger knows the account: a payment it parks while the account's
        # opening is being applied concurrently can stay parked (reported to the ledger's owner).
        await watch.wait_for("OpeningBalanceSet", account_no=household.account_no)
        await report_payment(kafka_bootstrap, household.account_no, amount, paid_on)
        await watch.wait_for("PaymentReceived", account_no=household.account_no)
    return SeededAccount(household.account_no, household, paid_on.strftime("%Y-%m"), amount)


async def link(client: httpx.AsyncClient, tokens: dict[str, str], account: SeededAccount) -> None:
    """Links the account (a few spaced tries: accounts' proof projection may trail the ledger's event;
    accounts allows 5 failures per user and account)."""
    body = {
        "account_no": account.account_no,
        "last_payment_month": account.payment_month,
        "last_payment_amount": account.payment_amount,
    }
    for _ in range(4):
        r = await client.post("/api/v1/accounts", headers=auth(tokens), json=body)
        if r.status_code == 201:
            return
        assert r.status_code == 422, r.text
        await asyncio.sleep(2.0)
    raise AssertionError(f"could not link {account.account_no}")


async def balance_of(client: httpx.AsyncClient, tokens: dict[str, str], account_no: str) -> str | None:
    r = await client.get("/api/v1/accounts", headers=auth(tokens))
    assert r.status_code == 200, r.text
    row = next(a for a in r.json() if a["account_no"] == account_no)
    balance: str | None = row["balance"]
    return balance


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


async def settle(seconds: float = 0.2) -> None:
    await asyncio.sleep(seconds)
