"""Every projection, rebuilt with `python -m accounts.worker rebuild <name>`, equals its incremental read model."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import date
from typing import Any

from accounts.adapters.district_offices import DistrictOfficesProjection
from accounts.adapters.projections import (
    AccountsProjection,
    LinksProjection,
    MeterHistoryProjection,
    PaymentProofProjection,
    ServiceRequestsProjection,
)
from contracts import backoffice as bo
from tests.support.stack import REPO, eventually

PROJECTIONS = [
    AccountsProjection,
    MeterHistoryProjection,
    LinksProjection,
    ServiceRequestsProjection,
    DistrictOfficesProjection,
    PaymentProofProjection,
]


async def snapshot(accounts: Any, numbers: list[str], codes: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    queries = {
        "accounts": "SELECT * FROM accounts WHERE account_no = ANY(%s) ORDER BY account_no",
        "meter_history": "SELECT * FROM meter_history WHERE account_no = ANY(%s) ORDER BY 1, 2",
        "account_links": "SELECT * FROM account_links WHERE account_no = ANY(%s) ORDER BY 1, 2",
        "service_requests": "SELECT * FROM service_requests WHERE account_no = ANY(%s) ORDER BY 1",
        "proof_payments": "SELECT * FROM proof_payments WHERE account_no = ANY(%s) ORDER BY 1, 2",
    }
    result = {name: await accounts.fetch(query, (numbers,)) for name, query in queries.items()}
    result["district_offices"] = await accounts.fetch(
        "SELECT * FROM district_offices WHERE code = ANY(%s) ORDER BY code", (codes,)
    )
    return result


async def caught_up(accounts: Any, ledger_streams: dict[str, int]) -> bool:
    """Every projection has applied every event of this service's store, and the ledger events sent."""
    prefix = f"accounts-{accounts.harness.instance}"
    missing = await accounts.fetch(
        "SELECT p.name, e.stream_id FROM (SELECT stream_id, max(stream_version) AS v FROM events GROUP BY 1) e"
        " CROSS JOIN unnest(%s::text[]) AS p(name)"
        " LEFT JOIN consumer_stream_versions c ON c.consumer = %s || '.' || p.name AND c.stream_id = e.stream_id"
        " WHERE c.version IS DISTINCT FROM e.v",
        ([p.name for p in PROJECTIONS if p is not PaymentProofProjection], prefix),
    )
    rows = await accounts.fetch(
        "SELECT stream_id, version FROM consumer_stream_versions WHERE consumer = %s AND stream_id = ANY(%s)",
        (f"{prefix}.payment-proofs", list(ledger_streams)),
    )
    return not missing and dict(rows) == ledger_streams


async def rebuild_with_the_cli(accounts: Any, name: str) -> None:
    env = {
        **os.environ,
        "ACCOUNTS_DATABASE_URL": accounts.settings.dsn,
        "ACCOUNTS_SERVICE_NAME": f"accounts-{accounts.harness.instance}",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "accounts.worker",
        "rebuild",
        name,
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()
    assert f"projection {name} reset" in output.decode()


async def test_rebuilt_projections_equal_the_incremental_read_models(accounts: Any) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    office = accounts.new_office_code()
    _, office_msg = accounts.message(
        "DistrictOfficeUpdated",
        {
            "code": office,
            "name": "Алмалинское РОЭС",
            "address": "ул. Толе би, 101",
            "phone": "+7 727 2",
            "hours": "9–18",
        },
    )
    await accounts.send(bo.REFERENCE, office, office_msg)
    no = accounts.new_account_no()
    _, early = accounts.message(
        "ResidentsChanged", {"account_no": no, "residents": 5, "effective_from": "2024-02-01"}
    )
    await accounts.send(bo.ACCOUNTS, no, early)
    await accounts.open_account(no, office)
    _, tariff = accounts.message(
        "TariffOptionChanged", {"account_no": no, "tariff_option": "flat", "effective_from": "2024-03-01"}
    )
    _, replaced = accounts.message(
        "MeterReplaced",
        {
            "account_no": no,
            "old_serial": "CE-0001",
            "final_reading": "999.99",
            "new_serial": "CE-0042",
            "digits": 8,
            "initial_reading": "1.50",
            "replaced_on": "2024-09-09",
        },
    )
    await accounts.send(bo.ACCOUNTS, no, tariff, replaced)
    await accounts.pay(no, "r-1", date(2025, 1, 5), "700.00")
    await accounts.pay(no, "r-2", date(2025, 2, 5), "800.00")
    await accounts.reverse(no, "r-2", date(2025, 2, 5), "800.00")
    await accounts.wait_payments(no, 2, reversed_count=1)
    assert (await accounts.link(alice, no, "2025-01", "700.00")).status_code == 201
    assert (await accounts.link(bob, no, "2025-01", "700.00")).status_code == 201
    assert (
        await accounts.api.delete(f"/internal/v1/accounts/{no}", headers=accounts.auth(bob))
    ).status_code == 204
    created = await accounts.api.post(
        f"/internal/v1/accounts/{no}/requests",
        json={"category": "meter_replacement", "text": "Замените счётчик"},
        headers=accounts.auth(alice),
    )
    request_id = created.json()["request_id"]
    _, progressed = accounts.message(
        "ServiceRequestProgressed",
        {"request_id": request_id, "account_no": no, "status": "in_progress", "comment": "Выезд мастера"},
    )
    await accounts.send(bo.REQUESTS, no, progressed)
    await accounts.wait_events(f"service-request:{request_id}", 2)
    await accounts.wait_events(f"account:{no}", 6)
    ledger_streams = {f"ledger:{no}:electricity": 1_000_003}
    await eventually(lambda: caught_up(accounts, ledger_streams))
    before = await snapshot(accounts, [no], [office])
    assert all(before.values()), before  # every read model has rows to rebuild

    await accounts.harness.stop_worker()
    await asyncio.gather(*(rebuild_with_the_cli(accounts, p.name) for p in PROJECTIONS))
    emptied = await snapshot(accounts, [no], [office])
    assert not any(emptied.values()), emptied
    # The replay starts where this test module's consumers started (not at the shared topics' very
    # beginning, which holds every earlier run's events): the rebuild removed the progress, we set it.
    accounts.seed_progress_at_start()
    accounts.harness.start_worker()
    await eventually(lambda: caught_up(accounts, ledger_streams))
    assert await snapshot(accounts, [no], [office]) == before
