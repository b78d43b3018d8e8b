"""Benchmarks of the gateway (not part of the test run's pass/fail). Needs the whole stack running.

    uv run python -m tests.benchmarks.bench_gateway [--url http://127.0.0.1:8000] [--rate 200] [--seconds 20]

1. Latency at a fixed arrival rate (open loop: requests are sent on schedule whether or not earlier
   ones have answered, so a slow answer can't hide the queue behind it) with a warm cache, for the
   portal's start page (a logged-in session) and `GET /api/v1/accounts` (a bearer token).
2. Freshness: a bank payment produced on `backoffice.payments.v1` until `GET /api/v1/accounts` shows
   the new balance, repeated.

Targets (issue 8): p99 under 50 ms at 200 requests/s; a payment visible within 1 s at p99. The load
generator runs on the same 2-core machine as the whole stack, so the numbers are pessimistic.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx

from tests.browser.backoffice import EventWatch, Household, new_account_no, open_account, report_payment
from tests.support.stack import load_stack_env

PASSWORD = "Надёжный-пароль-2025"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(name: str, latencies_ms: list[float], errors: int, seconds: float) -> None:
    print(
        f"{name:<26} n={len(latencies_ms):>5} errors={errors:<3} rate={len(latencies_ms) / seconds:6.1f}/s "
        f"p50={percentile(latencies_ms, 0.50):6.1f} ms  p95={percentile(latencies_ms, 0.95):6.1f} ms  "
        f"p99={percentile(latencies_ms, 0.99):6.1f} ms  max={max(latencies_ms):7.1f} ms"
    )


async def open_loop(
    call: Callable[[], Awaitable[int]], rate: float, seconds: float
) -> tuple[list[float], int]:
    """Calls `call` `rate` times a second for `seconds`; latency is measured from the scheduled time."""
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()

    async def one(scheduled: float) -> None:
        nonlocal errors
        try:
            status = await call()
            if status != 200:
                errors += 1
        except httpx.HTTPError:
            errors += 1
        latencies.append((time.perf_counter() - scheduled) * 1000)

    tasks = []
    total = int(rate * seconds)
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    return latencies, errors


async def setup(url: str, bootstrap: str) -> tuple[str, httpx.AsyncClient, str]:
    """A customer with a linked account; returns (bearer token, a logged-in portal client, account no)."""
    today = datetime.now(ZoneInfo("Asia/Almaty")).date()
    household = Household(
        account_no=new_account_no(), opened_on=today.replace(day=1).replace(year=today.year - 1)
    )
    paid_on = today.replace(day=1)
    async with EventWatch(bootstrap, ["accounts.events.v1", "ledger.events.v1"]) as watch:
        await open_account(bootstrap, household)
        await watch.wait_for("AccountOpened", account_no=household.account_no)
        await watch.wait_for("OpeningBalanceSet", account_no=household.account_no)
        await report_payment(bootstrap, household.account_no, "5000.00", paid_on)
        await watch.wait_for("PaymentReceived", account_no=household.account_no)
    email = f"bench-{uuid.uuid4().hex[:10]}@example.kz"
    api = httpx.AsyncClient(base_url=url, timeout=30)
    r = await api.post(
        "/api/v1/auth/register",
        json={"email": email, "password": PASSWORD, "full_name": "Бенч Тест Тестович"},
    )
    r.raise_for_status()
    token = (await api.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})).json()[
        "access_token"
    ]
    body = {
        "account_no": household.account_no,
        "last_payment_month": paid_on.strftime("%Y-%m"),
        "last_payment_amount": "5000.00",
    }
    for _ in range(5):
        r = await api.post("/api/v1/accounts", json=body, headers={"Authorization": f"Bearer {token}"})
        if r.status_code == 201:
            break
        await asyncio.sleep(2)
    r.raise_for_status()
    await api.aclose()
    portal = httpx.AsyncClient(
        base_url=url, timeout=30, limits=httpx.Limits(max_connections=100, max_keepalive_connections=100)
    )
    page = await portal.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    r = await portal.post("/login", data={"csrf_token": csrf.group(1), "email": email, "password": PASSWORD})
    assert r.status_code == 303, r.text
    return token, portal, household.account_no


async def balance(client: httpx.AsyncClient, token: str, account_no: str) -> str | None:
    rows = (await client.get("/api/v1/accounts", headers={"Authorization": f"Bearer {token}"})).json()
    return next((row["balance"] for row in rows if row["account_no"] == account_no), None)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--payments", type=int, default=20)
    args = parser.parse_args()
    env = {**load_stack_env(), **os.environ}
    bootstrap = env.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")

    token, portal, account_no = await setup(args.url, bootstrap)
    api = httpx.AsyncClient(
        base_url=args.url, timeout=30, limits=httpx.Limits(max_connections=100, max_keepalive_connections=100)
    )
    headers = {"Authorization": f"Bearer {token}"}
    # Warm: past the "hot" window that follows the link event, then a few reads fill the cache.
    for _ in range(120):  # the ledger learns of the link through Kafka
        if await balance(api, token, account_no) is not None:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(11)
    for _ in range(20):
        await api.get("/api/v1/accounts", headers=headers)
        await portal.get("/")

    async def start_page() -> int:
        return (await portal.get("/")).status_code

    async def accounts() -> int:
        return (await api.get("/api/v1/accounts", headers=headers)).status_code

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"gateway {args.url}: {args.rate:.0f} requests/s for {args.seconds:.0f} s each, warm cache (load {load})"
    )
    for name, call in (("start page (portal)", start_page), ("GET /api/v1/accounts", accounts)):
        latencies, errors = await open_loop(call, args.rate, args.seconds)
        report(name, latencies, errors, args.seconds)

    freshness: list[float] = []
    current = Decimal(await balance(api, token, account_no) or "0")
    for _ in range(args.payments):
        amount = Decimal("10.00")
        sent = time.perf_counter()
        await report_payment(bootstrap, account_no, f"{amount}", datetime.now(ZoneInfo("Asia/Almaty")).date())
        expected = f"{current - amount:.2f}"
        for _ in range(3000):
            if await balance(api, token, account_no) == expected:
                break
            await asyncio.sleep(0.01)
        else:
            raise SystemExit("a payment did not show within 30 s")
        freshness.append((time.perf_counter() - sent) * 1000)
        current -= amount
        await asyncio.sleep(0.5)
    print(
        f"{'payment → visible':<26} n={len(freshness):>5} p50={statistics.median(freshness):6.1f} ms  "
        f"p99={percentile(freshness, 0.99):6.1f} ms  max={max(freshness):7.1f} ms"
    )
    await api.aclose()
    await portal.aclose()


if __name__ == "__main__":
    asyncio.run(main())
