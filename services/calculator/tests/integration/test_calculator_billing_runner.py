"""The billing-run loop in-process on a fresh database (PostgreSQL only, no Kafka): what each kind of
account gets from one run, and a repeated close of the period that bills only the accounts that became
known since, without listing the whole register again.

Accounts of 2025-09 (opened 2025-01-01, meter from 0, two residents, flat):
- A: no reading → the estimate and PeriodBilled;
- B: a reading of 2025-09-15 accepted but not rated yet → `pending`, no event (its rating completes it);
- C: a reading of 2025-10-05, rated before the close (it covers September's days) → the estimate and, at
  once, its reversal `rev-{reading}-2025-09` in October;
- D: a reading of 2025-09-20, rated → no estimate, PeriodBilled with the reading's charge.
Then E becomes known (as the accounts projection leaves a new account: not yet in the runs) and the period
is closed again: E is billed, A–D get nothing new, and the run keeps the list it made the first time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from calculator.adapters.billing_runner import BillingRunner
from calculator.adapters.ingress import PeriodClosedIngress
from calculator.settings import MIGRATIONS_DIR
from calculator.worker import Components
from contracts.events.calculator import ReadingSubmitted
from service_runtime.db import Connection, open_pool
from service_runtime.migrations import migrate_to_head
from tests.support.messages import period_closed_message

PERIOD = "2025-09"


async def open_account(conn: Connection, account_no: str, *, synced: bool) -> None:
    await conn.execute(
        "INSERT INTO accounts (account_no, opened_on, registered_at, billing_synced) VALUES (%s, %s, now(), %s)",
        (account_no, dt.date(2025, 1, 1), synced),
    )
    for attribute, value in (
        ("residents", "2"),
        ("tariff_option", '"flat"'),
        ("electric_stove", "false"),
        ("living_alone", "false"),
    ):
        await conn.execute(
            "INSERT INTO account_attributes (account_no, attribute, effective_from, stream_version, value)"
            " VALUES (%s, %s, %s, 1, %s::jsonb)",
            (account_no, attribute, dt.date(2025, 1, 1), value),
        )
    await conn.execute(
        "INSERT INTO meters (account_no, serial, digits, installed_on, initial_reading)"
        " VALUES (%s, %s, 6, %s, 0)",
        (account_no, f"M{account_no}", dt.date(2025, 1, 1)),
    )


async def accept_reading(
    conn: Connection, components: Components, account_no: str, day: dt.date, value: str, *, rate: bool
) -> str:
    reading_id = f"r-{account_no}-{day}"
    event = uuid.uuid4()
    reading = ReadingSubmitted(
        reading_id=reading_id,
        account_no=account_no,
        meter_serial=f"M{account_no}",
        reading_date=day,
        value=Decimal(value),
        source="grid",
    )
    await components.own.append_reading(conn, 0, reading, Decimal(value), event)
    if rate:
        assert await components.rating.rate_reading(conn, reading_id, str(event)) == "rated"
    return reading_id


async def bill(pool: Any, runner: BillingRunner, period: str) -> None:
    async with pool.connection() as conn, conn.transaction():
        await PeriodClosedIngress().handle(conn, period_closed_message(period))
    for _ in range(20):  # a turn adds new accounts and bills the open run
        await runner.run_once()
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT count(*) FROM billing_runs WHERE completed_at IS NULL")
            row = await cur.fetchone()
            cur = await conn.execute("SELECT count(*) FROM accounts WHERE NOT billing_synced")
            unsynced = await cur.fetchone()
        if row == (0,) and unsynced == (0,):
            return
    raise AssertionError("the billing run did not complete")


async def test_one_run_bills_each_kind_and_a_repeated_close_only_the_new_accounts(
    make_database: Callable[[], str],
) -> None:
    dsn = make_database()
    await asyncio.to_thread(migrate_to_head, MIGRATIONS_DIR, dsn)
    pool = await open_pool(dsn, max_size=4, name="billing-runner-test")
    components = Components()
    runner = BillingRunner(pool, components.billing, batch_size=2, concurrency=2)  # several batches
    a, b, c, d, e = (f"10000000000{i}" for i in range(1, 6))
    try:
        async with pool.connection() as conn:
            await components.catalog.ensure_seeded(conn)
            for account in (a, b, c, d):
                await open_account(conn, account, synced=True)
            await accept_reading(conn, components, b, dt.date(2025, 9, 15), "150", rate=False)
            c_reading = await accept_reading(conn, components, c, dt.date(2025, 10, 5), "260", rate=True)
            d_reading = await accept_reading(conn, components, d, dt.date(2025, 9, 20), "240", rate=True)

        await bill(pool, runner, PERIOD)

        async def fetch(query: str, params: Any = ()) -> list[tuple[Any, ...]]:
            async with pool.connection() as conn:
                cur = await conn.execute(query, params)
                return await cur.fetchall()

        status = dict(
            await fetch("SELECT account_no, status FROM period_billing WHERE period = %s", (PERIOD,))
        )
        assert status == {a: "billed", b: "pending", c: "billed", d: "billed"}
        charges = dict(
            await fetch(
                "SELECT account_no, array_agg(charge_id ORDER BY charge_id) FROM charges WHERE period = %s"
                " GROUP BY account_no",
                (PERIOD,),
            )
        )
        assert charges == {
            a: [f"est-{a}-{PERIOD}"],
            c: [f"est-{c}-{PERIOD}"],
            d: [f"chg-{d_reading}"],
        }
        billed_ids = dict(
            await fetch("SELECT account_no, charge_ids FROM period_billing WHERE status = 'billed'")
        )
        assert billed_ids == {a: [f"est-{a}-{PERIOD}"], c: [f"est-{c}-{PERIOD}"], d: [f"chg-{d_reading}"]}
        # C's October reading was rated before September was closed: its true-up follows at once.
        assert await fetch(
            "SELECT correction_id, period, reversed_charge_ids FROM estimate_reversals WHERE account_no = %s",
            (c,),
        ) == [(f"rev-{c_reading}-{PERIOD}", "2025-10", [f"est-{c}-{PERIOD}"])]
        assert await fetch(
            "SELECT count(*) FROM billing_run_items WHERE period = %s AND NOT done", (PERIOD,)
        ) == [(0,)]

        # E becomes known after the run; the period is closed again.
        [(populated_at, position)] = await fetch(
            "SELECT populated_at, (SELECT max(position) FROM events) FROM billing_runs WHERE period = %s",
            (PERIOD,),
        )
        async with pool.connection() as conn:
            await open_account(conn, e, synced=False)
        await bill(pool, runner, PERIOD)

        new_events = await fetch(
            "SELECT stream_id, event_type FROM events WHERE position > %s ORDER BY position", (position,)
        )
        assert new_events == [
            (f"billing-period:{e}:{PERIOD}", "ChargeCalculated"),
            (f"billing-period:{e}:{PERIOD}", "PeriodBilled"),
        ]
        # The run kept its list (made once): E was added to it as a new account, nothing listed again.
        assert await fetch(
            "SELECT populated_at, accounts_total FROM billing_runs WHERE period = %s", (PERIOD,)
        ) == [(populated_at, 5)]
        assert await fetch(
            "SELECT account_no FROM billing_run_items WHERE period = %s ORDER BY account_no", (PERIOD,)
        ) == [(x,) for x in (a, b, c, d, e)]
        assert (
            dict(await fetch("SELECT account_no, status FROM period_billing WHERE period = %s", (PERIOD,)))[e]
            == "billed"
        )
    finally:
        await pool.close()
