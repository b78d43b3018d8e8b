"""Browser tests: Playwright driving Debian's Chromium (headless) through the portal, on the full local
stack (every service under honcho, `running_services`).

The portal under test is the gateway of this checkout, served by uvicorn inside the test process on a
free port (so the suite always tests the current code, whatever gateway honcho started); set
`LK_PORTAL_URL` to drive another one (e.g. http://127.0.0.1:8000). Screenshots of every page go to
`artifacts/screenshots/` (git-ignored).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.browser.backoffice import (
    EventWatch,
    Household,
    close_period,
    district_office,
    grid_reading,
    new_account_no,
    open_account,
    report_payment,
)
from tests.support.stack import REPO

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = REPO / "artifacts" / "screenshots"


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium (installed with apt when missing and we may; never `playwright install`)."""
    if not Path(CHROMIUM).exists() and shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        result = subprocess.run(["apt-get", "install", "-y", "chromium"], env=env, check=False, timeout=900)
        if result.returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, check=False, timeout=600)
            subprocess.run(["apt-get", "install", "-y", "chromium"], env=env, check=False, timeout=900)
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    return CHROMIUM


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serve_gateway(**overrides: Any) -> AsyncIterator[str]:
    """This checkout's gateway in uvicorn on a free port, in the test's event loop; yields its URL."""
    from gateway.api import create_app
    from gateway.settings import GatewaySettings

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    tag = uuid.uuid4().hex[:8]
    settings = GatewaySettings(
        public_base_url=url,
        redis_prefix=f"gwbrowser-{tag}:",
        cache_consumer_group=f"gateway-browser-{tag}",
        **overrides,
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(300):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.1)
    try:
        yield url
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=30)


@pytest.fixture(scope="session")
async def portal_url(running_services: str) -> AsyncIterator[str]:
    if os.environ.get("LK_PORTAL_URL"):
        yield os.environ["LK_PORTAL_URL"].rstrip("/")
        return
    async with serve_gateway() as url:
        yield url


@pytest.fixture(scope="session")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        await browser.close()


@dataclass
class Shots:
    """Saves a screenshot of every page visited, numbered in order, and collects CSP/JS errors."""

    prefix: str
    count: int = 0
    errors: list[str] = field(default_factory=list)

    async def take(self, page: Page, name: str) -> None:
        self.count += 1
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(
            path=str(SCREENSHOTS / f"{self.prefix}-{self.count:02d}-{name}.png"), full_page=True
        )


@contextlib.asynccontextmanager
async def new_page(
    browser: Browser, shots: Shots, **options: Any
) -> AsyncIterator[tuple[BrowserContext, Page]]:
    context = await browser.new_context(locale="ru-RU", accept_downloads=True, **options)
    page = await context.new_page()
    page.set_default_timeout(30_000)
    page.on("console", lambda m: shots.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: shots.errors.append(str(e)))
    try:
        yield context, page
    finally:
        await context.close()


@dataclass
class Household2:
    """The customer's data as the back-office created it."""

    household: Household
    office_name: str
    periods: tuple[str, str, str]  # three months ago, two months ago, last month
    last_payment_month: str
    last_payment_amount: str
    last_reading: str

    @property
    def account_no(self) -> str:
        return self.household.account_no


def _month_start(day: date, back: int) -> date:
    index = day.year * 12 + day.month - 1 - back
    return date(index // 12, index % 12 + 1, 1)


@pytest.fixture(scope="session")
async def customer_data(running_services: str, kafka_bootstrap: str) -> Household2:
    """An account opened three months ago with two grid readings, two bank payments and two closed
    periods (so two bills), through the back-office topics; ready once the services published them."""
    today = date.today()
    m1, m2, m3 = (_month_start(today, back) for back in (3, 2, 1))
    office_code = f"T{uuid.uuid4().hex[:6].upper()}"
    office_name = f"Тестовый РОЭС {office_code}"
    household = Household(
        account_no=new_account_no(),
        payer_name="Ахметова Динара Сериковна",
        address="г. Алматы, мкр. Самал-2, д. 58, кв. 14",
        residents=2,
        district_office_code=office_code,
        opened_on=m1,
        initial_reading=Decimal("1000.00"),
    )
    no = household.account_no
    topics = ["accounts.events.v1", "ledger.events.v1", "calculator.events.v1", "receipts.events.v1"]
    async with EventWatch(kafka_bootstrap, topics) as watch:
        await district_office(
            kafka_bootstrap,
            office_code,
            office_name,
            "г. Алматы, ул. Жандосова, 1",
            "+7 727 300 00 00",
            "Пн–Пт 09:00–18:00",
        )
        await watch.wait_for("DistrictOfficeChanged", code=office_code)
        await open_account(kafka_bootstrap, household)
        await watch.wait_for("AccountOpened", account_no=no)
        await watch.wait_for("OpeningBalanceSet", account_no=no)
        await grid_reading(kafka_bootstrap, no, household.meter_serial, m2 - timedelta(days=1), "1180.00")
        await grid_reading(kafka_bootstrap, no, household.meter_serial, m3 - timedelta(days=1), "1420.00")
        await watch.wait_for_all("ReadingSubmitted", count=2, account_no=no, timeout_s=120)
        await report_payment(kafka_bootstrap, no, "3000.00", m2 + timedelta(days=14), bank="Halyk Bank")
        await report_payment(kafka_bootstrap, no, "4500.00", m3 + timedelta(days=9), bank="Kaspi Bank")
        await watch.wait_for_all("PaymentReceived", count=2, account_no=no)
        for month in (m1, m2):
            await close_period(kafka_bootstrap, month.strftime("%Y-%m"))
        for month in (m1, m2):
            await watch.wait_for(
                "ReceiptIssued", account_no=no, period=month.strftime("%Y-%m"), timeout_s=240
            )
    return Household2(
        household,
        office_name,
        (m1.strftime("%Y-%m"), m2.strftime("%Y-%m"), m3.strftime("%Y-%m")),
        m3.strftime("%Y-%m"),
        "4500.00",
        "1420.00",
    )


@pytest.fixture(scope="session")
def mail_dir(stack_env: dict[str, str]) -> Path:
    return Path(stack_env.get("SMTP_SINK_DIR", str(REPO / ".local" / "mail")))
