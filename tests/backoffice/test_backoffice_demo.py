"""The demo bootstrap against the running stack: seeded (deterministically), a customer registered
through the public API, two accounts linked with the proof from the simulator's ledger, every month of
their 24 months of history accrued and billed when the command returns; the third links by hand with the
printed proof; a re-run changes nothing.

It runs late in a long CI run, on a busy machine, with every earlier test's data on the shared topics:
closing the demo's 24 periods bills every account the stack knows that was open then, so the deadlines
are generous (the demo waits up to `SETTLE_WAIT_S` for its history; a deadline is a bound on progress,
not a timing assertion).

The test runs the real console script with its own customer (a fresh e-mail and a credentials file in
tmp) and without background households, so it publishes exactly the demo accounts' history that the
stack's own demo (`backoffice-sim demo`) publishes — same state file, same bytes — and leaves the real
demo customer (demo@example.kz) alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from backoffice_simulator.demo import (
    demo_scenario,
    load_or_create_credentials,
    load_or_create_state,
    local_dir,
)
from backoffice_simulator.generator import (
    DEMO_LINKED,
    DEMO_MANUAL,
    DEMO_MONTHS,
    Month,
    almaty_today,
    generate,
)
from backoffice_simulator.ledger import SimLedger
from backoffice_simulator.portal import ApiError, PortalClient
from tests.support.stack import eventually

pytestmark = pytest.mark.stack
SCRIPT = Path(sys.executable).parent / "backoffice-sim"
READINGS_WAIT_S = 600
SETTLE_WAIT_S = 1200


def run_demo_cli(email: str, credentials: Path) -> dict[str, Any]:
    done = subprocess.run(
        [
            str(SCRIPT),
            "demo",
            "--email",
            email,
            "--credentials-file",
            str(credentials),
            "--background",
            "0",
            "--readings-wait",
            str(READINGS_WAIT_S),
            "--settle-wait",
            str(SETTLE_WAIT_S),
            "--json",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=READINGS_WAIT_S + SETTLE_WAIT_S + 600,
        env=dict(os.environ),
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.timeout(2 * (READINGS_WAIT_S + SETTLE_WAIT_S) + 1800)
async def test_demo_customer_with_two_linked_accounts_and_a_third_to_link(
    running_services: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    email = f"bosim-demo-{uuid.uuid4().hex[:10]}@example.kz"
    credentials = tmp_path / "demo-credentials.txt"
    first = await asyncio.to_thread(run_demo_cli, email, credentials)
    assert first["registered"] is True and first["failures"] == {}
    assert sorted(first["linked"]) == sorted(DEMO_LINKED)
    # The demo returned once both linked accounts show every month accrued and billed.
    assert first["complete"] is True, first["history"]
    for no in DEMO_LINKED:
        shown = first["history"][no]
        assert shown["months"] >= DEMO_MONTHS and shown["accrued"] == shown["bills"] == shown["months"]
    assert first["manual"]["account_no"] == DEMO_MANUAL
    assert credentials.exists() and oct(credentials.stat().st_mode & 0o777) == "0o600"

    state = load_or_create_state(local_dir())
    world = generate(demo_scenario(state, background=0))
    ledger = SimLedger().record_all(world.messages)
    assert first["manual"] == ledger.proof(DEMO_MANUAL)

    secret = load_or_create_credentials(credentials, email)
    async with PortalClient(running_services) as client:
        await client.login(secret.email, secret.password)
        mine = {a["account_no"] for a in await client.accounts()}
        assert set(DEMO_LINKED) <= mine and DEMO_MANUAL not in mine

        # «Информация по услугам»: every month of the history accrued, every payment of the simulator's
        # ledger in it; «Квитанции»: a bill issued for every month.
        months = [str(m) for m in world.scenario.demo_window]
        assert len(months) >= DEMO_MONTHS and months[0] == str(Month.parse(state["start"]))
        last_month = Month.of(almaty_today())
        problems: list[str] = []

        async def history_complete() -> bool:
            problems.clear()
            for no in DEMO_LINKED:
                try:
                    services = await client.services_of(no, months[0], str(last_month))
                    bills = await client.receipts(no, months[0], str(last_month))
                except ApiError as exc:
                    if exc.status == 404:  # the ledger's projection of the link is on its way
                        problems.append(f"{no}: 404")
                        continue
                    raise
                periods = next(s for s in services if s["service_code"] == "electricity")["periods"]
                paid = {p["period"]: Decimal(p["paid"]) for p in periods if Decimal(p["paid"]) != 0}
                if paid != ledger.paid_by_month(no):
                    problems.append(f"{no} paid: {paid} != {ledger.paid_by_month(no)}")
                accrued = {p["period"] for p in periods if Decimal(p["accrued"]) > 0}
                if missing := sorted(set(months) - accrued):
                    problems.append(f"{no}: nothing accrued in {missing}")
                if unbilled := sorted(set(months) - {b["period"] for b in bills}):
                    problems.append(f"{no}: no bill for {unbilled}")
            return not problems

        try:
            await eventually(history_complete, timeout_s=600, every_s=3.0)
        except AssertionError as exc:
            raise AssertionError("\n".join(problems)) from exc

        # The third account, by hand, with the printed proof («Добавить новый лицевой счёт»).
        manual = first["manual"]
        r = await client.link(
            manual["account_no"], manual["last_payment_month"], manual["last_payment_amount"]
        )
        assert r.status_code == 201, r.text
        assert r.json()["message"] == "Успешно добавлено"
        info = await client.account(DEMO_MANUAL)
        assert info["payer_name"] == "Нурланов Ерлан Болатович"

    # A re-run: the address is taken, so it logs in; the links stand; the same proof; nothing new.
    again = await asyncio.to_thread(run_demo_cli, email, credentials)
    assert again["registered"] is False and again["failures"] == {}
    assert again["linked"] == first["linked"] and again["manual"] == first["manual"]
    assert again["published"] == first["published"]
