"""The load test's customers: households from the back-office simulator, published to the stack's Kafka,
and users registered through the public API, each with accounts linked by the simulator's proof.

`seed_users()` returns what the locust process needs (e-mail, password, accounts and their billed
months) and writes it to a JSON file. Nothing here is timed: it only prepares the data.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from pathlib import Path
from typing import Any

from backoffice_simulator.generator import Month, Scenario, almaty_today, generate
from backoffice_simulator.kafka import ensure_topics, publish
from backoffice_simulator.ledger import SimLedger
from backoffice_simulator.portal import PortalClient
from tests.backoffice.support import end_offsets, link_when_ready


async def seed_users(
    gateway: str,
    bootstrap: str,
    *,
    users: int,
    accounts_per_user: int = 2,
    months: int = 6,
    seed: int = 7,
    out: Path | None = None,
    services: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    prefix = f"5{secrets.randbelow(10**5):05d}"
    world = generate(
        Scenario(
            seed=seed,
            accounts=users * accounts_per_user,
            months=months,
            account_prefix=prefix,
            missing_rate=0.0,
            new_accounts_rate=0.0,
        )
    )
    ledger = SimLedger().record_all(world.messages)
    since = await end_offsets(bootstrap, ["ledger.events.v1"])
    await ensure_topics(bootstrap)
    await publish(bootstrap, world.messages, show_progress=False)
    numbers = [no for no in world.households if ledger.proof(no) is not None]
    today = almaty_today()
    result: list[dict[str, Any]] = []

    async def one(index: int) -> dict[str, Any]:
        mine = numbers[index * accounts_per_user : (index + 1) * accounts_per_user]
        async with PortalClient(gateway, mode="gateway", services=services, timeout_s=60) as client:
            email = f"load-{uuid.uuid4().hex[:12]}@example.kz"
            password = secrets.token_urlsafe(16)
            r = await client.register(email, password, "Нагрузкин Тест Тестович")
            assert r.status_code == 201, r.text
            await client.login(email, password)
            accounts = []
            for no in mine:
                proof = ledger.proof(no)
                assert proof is not None
                await link_when_ready(client, proof, bootstrap, since=since, timeout_s=600)
                accounts.append(
                    {"account_no": no, "opened": str(Month.of(ledger.accounts[no].opened_on or today))}
                )
            for account in accounts:  # the billing run and the bills follow the history: wait for them
                for _ in range(300):
                    r = await client.request("GET", f"/accounts/{account['account_no']}/receipts")
                    bills = [b["period"] for b in r.json()]
                    if len(bills) >= months:
                        break
                    await asyncio.sleep(2)
                assert bills, f"no bill for {account['account_no']} after 10 minutes"
                account["bills"] = bills
            return {"email": email, "password": password, "accounts": accounts}

    semaphore = asyncio.Semaphore(4)

    async def limited(index: int) -> dict[str, Any]:
        async with semaphore:
            return await one(index)

    result = list(await asyncio.gather(*(limited(i) for i in range(users))))
    if out is not None:
        await asyncio.to_thread(out.write_text, json.dumps(result, ensure_ascii=False, indent=2))
    return result
