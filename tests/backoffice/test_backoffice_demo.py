"""The demo bootstrap against the running stack: seeded (deterministically), a customer registered
through the public API, two accounts linked with the proof from the simulator's ledger; the third links
by hand with the printed proof; a re-run changes nothing.

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
            "--json",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=400,
        env=dict(os.environ),
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.skip(
    reason="issue 9 open: on a clean CI stack the demo's 24 months of billing did not complete within the"
    " 180 s wait (2026-11-25 CI run); find whether it is slowness or a stuck billing run before re-enabling"
)
async def test_demo_customer_with_two_linked_accounts_and_a_third_to_link(
    running_services: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    email = f"bosim-demo-{uuid.uuid4().hex[:10]}@example.kz"
    credentials = tmp_path / "demo-credentials.txt"
    first = await asyncio.to_thread(run_demo_cli, email, credentials)
    assert first["registered"] is True and first["failures"] == {}
    assert sorted(first["linked"]) == sorted(DEMO_LINKED)
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

        # «Информация по услугам»: at least 24 months, every payment of the simulator's ledger in it.
        first_month = Month.parse(state["start"])
        last_month = Month.of(almaty_today())

        async def history_complete() -> bool:
            for no in DEMO_LINKED:
                try:
                    services = await client.services_of(no, str(first_month), str(last_month))
                except ApiError as exc:
                    if exc.status == 404:  # the ledger's projection of the link is on its way
                        return False
                    raise
                periods = next(s for s in services if s["service_code"] == "electricity")["periods"]
                paid = {p["period"]: Decimal(p["paid"]) for p in periods if Decimal(p["paid"]) != 0}
                if paid != ledger.paid_by_month(no):
                    return False
                accrued_months = [p for p in periods if Decimal(p["accrued"]) > 0]
                if len(accrued_months) < DEMO_MONTHS - 2:
                    return False
            return True

        await eventually(history_complete, timeout_s=180, every_s=2.0)

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
