"""The ledger end to end on the real stack: back-office and upstream messages in, the internal API out.

The tests of this module share one ledger (harness) and run in order; each uses its own accounts.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import random
import subprocess
import sys
import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from pypdf import PdfReader

from contracts import backoffice as bo
from contracts.events import calculator as calc
from service_runtime.dead_letters import CONSUMER_HEADER, REASON_HEADER
from tests.support.stack import REPO

from .conftest import Ledger, account_number, uid


async def worker_cli(ledger: Ledger, *args: str) -> str:
    """`python -m ledger.worker ARGS` against the test's database; its standard output."""
    env = {**os.environ, "LEDGER_DATABASE_URL": ledger.svc.settings.dsn}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "ledger.worker", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def rows_of(body: list[dict[str, Any]], service_code: str) -> list[tuple[str, ...]]:
    service = next(s for s in body if s["service_code"] == service_code)
    return [
        (p["period"], p["opening_balance"], p["accrued"], p["corrections"], p["paid"], p["closing_balance"])
        for p in service["periods"]
    ]


async def test_payments_accruals_corrections_and_cancellations_reach_the_api(ledger: Ledger) -> None:
    account, user = account_number(), uuid.uuid4()
    p = {name: f"{name}-{uid()}" for name in ("P0", "P1", "P2", "P3", "P9", "W1")}

    # Before the account opens: a payment (parked until it opens) and a cancellation of a payment
    # nobody reported yet (parked until that payment arrives).
    await ledger.backoffice(
        bo.PAYMENTS,
        [
            ledger.payment(account, p["P0"], "200.00", date(2025, 1, 12)),
            ledger.cancellation(account, p["P9"]),
        ],
    )

    async def parked() -> bool:
        rows = await ledger.fetch("SELECT count(*) FROM ledger_parked WHERE account_no = %s", (account,))
        return bool(rows[0][0] == 2)

    await ledger.wait_for(parked)
    # what an operator sees
    listing = await worker_cli(ledger, "parked")
    waiting = [line for line in listing.splitlines() if account in line]
    assert len(waiting) == 2, listing
    assert any("waiting_for=account PaymentReported" in line and p["P0"] in line for line in waiting)
    assert any("waiting_for=account PaymentCancelled" in line and p["P9"] in line for line in waiting)

    await ledger.open_account(account, date(2025, 1, 10), opening_balance="1500.00")
    await ledger.link(account, user)
    await ledger.charge(account, f"CH-{uid()}", "2025-01", "3185.00")
    await ledger.charge(account, f"CH-{uid()}", "2025-02", "6370.00", kwh="200.00")
    await ledger.charge(account, f"CH-{uid()}", "2025-03", "1592.50", kwh="50.00")
    p1 = ledger.payment(account, p["P1"], "1000.00", date(2025, 2, 5), bank="Kaspi Bank")
    await ledger.backoffice(
        bo.PAYMENTS,
        [
            p1,
            # the same bank payment again, under a new event id: one payment
            ledger.payment(account, p["P1"], "1000.00", date(2025, 2, 5), bank="Kaspi Bank"),
            # and the same message again (same event id)
            p1,
            ledger.payment(account, p["P2"], "500.00", date(2025, 2, 20)),
            ledger.cancellation(account, p["P2"]),
            ledger.payment(account, p["P9"], "300.00", date(2025, 3, 3)),  # its cancellation waits for it
            ledger.payment(account, p["P3"], "2000.00", date(2025, 3, 15)),
            # another service on the same account: a stream of its own
            ledger.payment(account, p["W1"], "100.00", date(2025, 2, 10), service_code="water"),
        ],
    )

    async def services(**params: str) -> list[dict[str, Any]]:
        r = await ledger.get(f"/internal/v1/accounts/{account}/services", user, **params)
        assert r.status_code == 200, r.text
        body: list[dict[str, Any]] = r.json()
        return body

    march = {"from": "2025-01", "to": "2025-03"}

    async def march_closed() -> bool:
        body = await services(**march)
        rows = rows_of(body, "electricity") if any(s["service_code"] == "electricity" for s in body) else []
        return len(rows) == 3 and rows[2][5] == "9447.50" and len(body) == 2

    await ledger.wait_for(march_closed)
    assert rows_of(await services(**march), "electricity") == [
        ("2025-01", "1500.00", "3185.00", "0.00", "200.00", "4485.00"),
        ("2025-02", "4485.00", "6370.00", "0.00", "1000.00", "9855.00"),
        ("2025-03", "9855.00", "1592.50", "0.00", "2000.00", "9447.50"),
    ]

    # A late correction of January (back-office) and an estimate trued up in March (calculator):
    # every later month re-rolls.
    await ledger.backoffice(bo.BILLING, [ledger.correction(account, f"K-{uid()}", "2025-01", "-185.00")])
    estimate = calc.EstimateReversed(
        correction_id=f"E-{uid()}",
        account_no=account,
        period="2025-03",
        amount=Decimal("-92.50"),
        reversed_charge_ids=["CH-estimated"],
    )
    await ledger.canonical(
        ledger.upstream.calculator, f"billing-period:{account}:2025-03", "calculator", estimate
    )

    async def rerolled() -> bool:
        return rows_of(await services(**march), "electricity")[2][5] == "9170.00"

    await ledger.wait_for(rerolled)
    body = await services(**march)
    assert rows_of(body, "electricity") == [
        ("2025-01", "1500.00", "3185.00", "-185.00", "200.00", "4300.00"),
        ("2025-02", "4300.00", "6370.00", "0.00", "1000.00", "9670.00"),
        ("2025-03", "9670.00", "1592.50", "-92.50", "2000.00", "9170.00"),
    ]
    electricity = next(s for s in body if s["service_code"] == "electricity")
    assert (electricity["service_name"], electricity["supplier"]) == (
        "Электроэнергия",
        "АО «АлматыЭнергоСбыт»",
    )
    assert electricity["balance"] == "9170.00"
    # a service the reference does not list is shown under its code; a quiet month carries the balance
    assert rows_of(body, "water") == [
        ("2025-02", "0.00", "0.00", "0.00", "100.00", "-100.00"),
        ("2025-03", "-100.00", "0.00", "0.00", "0.00", "-100.00"),
    ]
    assert next(s for s in body if s["service_code"] == "water")["service_name"] == "water"
    # nothing is parked any more: the parked payment and cancellation were applied in order
    assert await ledger.fetch("SELECT count(*) FROM ledger_parked WHERE account_no = %s", (account,)) == [
        (0,)
    ]

    # the balance for the account list, per service and in total
    r = await ledger.get(f"/internal/v1/accounts/{account}/balance", user)
    assert r.json() == {
        "account_no": account,
        "balance": "9070.00",
        "services": [
            {"service_code": "electricity", "balance": "9170.00"},
            {"service_code": "water", "balance": "-100.00"},
        ],
    }

    # «Платежи»: cancelled payments are not listed, the duplicate is one payment
    r = await ledger.get(
        f"/internal/v1/accounts/{account}/payments", user, **{"from": "2025-01-01", "to": "2025-12-31"}
    )
    assert r.status_code == 200
    assert [(x["payment_id"], x["date"], x["amount"], x["bank"]) for x in r.json()] == [
        (p["P0"], "2025-01-12", "200.00", "Halyk Bank"),
        (p["P1"], "2025-02-05", "1000.00", "Kaspi Bank"),
        (p["W1"], "2025-02-10", "100.00", "Halyk Bank"),
        (p["P3"], "2025-03-15", "2000.00", "Halyk Bank"),
    ]
    r = await ledger.get(
        f"/internal/v1/accounts/{account}/payments", user, **{"from": "2025-02-06", "to": "2025-03-01"}
    )
    assert [x["payment_id"] for x in r.json()] == [p["W1"]]

    # «Выписка по услуге» as JSON, HTML and PDF
    r = await ledger.get(f"/internal/v1/accounts/{account}/services/electricity/statement", user, **march)
    statement = r.json()
    assert (statement["service_name"], statement["supplier"]) == ("Электроэнергия", "АО «АлматыЭнергоСбыт»")
    assert [row["tariff"] for row in statement["rows"]] == ["31.85 ₸/кВт·ч"] * 3
    assert (statement["from"], statement["to"], statement["closing_balance"]) == (
        "2025-01",
        "2025-03",
        "9170.00",
    )
    assert statement["totals"] == {"accrued": "11147.50", "corrections": "-277.50", "paid": "3200.00"}
    r = await ledger.get(
        f"/internal/v1/accounts/{account}/services/electricity/statement", user, **march, format="html"
    )
    assert r.headers["content-type"].startswith("text/html") and "Выписка по услуге" in r.text
    r = await ledger.get(
        f"/internal/v1/accounts/{account}/services/electricity/statement", user, **march, format="pdf"
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    text = " ".join(" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(r.content)).pages)
    for expected in (
        "Выписка по услуге",
        "Электроэнергия",
        "АО «АлматыЭнергоСбыт»",
        account,
        "январь 2025 31.85 ₸/кВт·ч 1 500,00 3 185,00 -185,00 200,00 4 300,00",
        "февраль 2025 31.85 ₸/кВт·ч 4 300,00 6 370,00 0,00 1 000,00 9 670,00",
        "март 2025 31.85 ₸/кВт·ч 9 670,00 1 592,50 -92,50 2 000,00 9 170,00",
    ):
        assert expected in text, (expected, text)

    # Someone else's account is not found, whoever asks; no token is 401; bad filters are 422
    stranger = uuid.uuid4()
    for path in ("services", "payments", "balance", "services/electricity/statement"):
        r = await ledger.get(f"/internal/v1/accounts/{account}/{path}", stranger)
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "account_not_found"
    r = await ledger.svc.client.get(f"/internal/v1/accounts/{account}/balance")
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    r = await ledger.get(
        f"/internal/v1/accounts/{account}/services", user, **{"from": "2025-05", "to": "2025-01"}
    )
    assert r.status_code == 422 and r.json()["code"] == "invalid_range"
    assert r.json()["errors"][0]["field"] == "from"
    r = await ledger.get(f"/internal/v1/accounts/{account}/payments", user, **{"from": "2025-13-01"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_date"
    r = await ledger.get(
        f"/internal/v1/accounts/{account}/services/electricity/statement", user, format="doc"
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "format"
    r = await ledger.get(f"/internal/v1/accounts/{account}/services/gas/statement", user)
    assert r.status_code == 404 and r.json()["code"] == "service_not_found"


async def test_malformed_and_business_invalid_messages_are_dead_lettered(ledger: Ledger) -> None:
    account, user = account_number(), uuid.uuid4()
    await ledger.open_account(account, date(2025, 1, 1))
    await ledger.link(account, user)
    good = f"OK-{uid()}"
    conflicting = f"CF-{uid()}"
    marker = f"garbage-{uid()}".encode()
    await ledger.backoffice(
        bo.PAYMENTS,
        [
            (account, b'{"not json ' + marker),
            ledger.payment(account, f"BAD-{uid()}", "1.234", date(2025, 1, 2)),  # a third decimal
            ledger.payment(account, conflicting, "50.00", date(2025, 1, 3)),
            ledger.payment(account, conflicting, "55.00", date(2025, 1, 3)),  # same payment id, other amount
            ledger.payment(account, f"FUT-{uid()}", "10.00", date.today() + timedelta(days=30)),
            ledger.payment(account, good, "10.00", date(2025, 1, 4)),
        ],
    )
    await ledger.charge(account, f"NEG-{uid()}", "2025-01", "-5.00")  # a negative accrual

    async def applied() -> bool:
        r = await ledger.get(
            f"/internal/v1/accounts/{account}/payments", user, **{"from": "2025-01-01", "to": "2025-01-31"}
        )
        return [x["payment_id"] for x in r.json()] == [conflicting, good]

    await ledger.wait_for(applied)
    r = await ledger.get(
        f"/internal/v1/accounts/{account}/payments", user, **{"from": "2025-01-01", "to": "2025-01-31"}
    )
    assert [x["amount"] for x in r.json()] == ["50.00", "10.00"], "the first of the conflicting facts stays"

    mine = f"ledger-{ledger.svc.instance}.".encode()  # not another ledger worker's (the stack may run one)

    def ours(record: Any) -> bool:
        by_us = dict(record.headers).get(CONSUMER_HEADER, b"").startswith(mine)
        return by_us and (record.key == account.encode() or account.encode() in record.value)

    dead = await ledger.dead_letters(bo.PAYMENTS, ours, expect=4)
    reasons = sorted(dict(d.headers)[REASON_HEADER].decode() for d in dead)
    assert len(reasons) == 4, reasons
    assert any("malformed" in r or "validation" in r for r in reasons)
    assert any("two decimals" in r for r in reasons)
    assert any(conflicting in r and "55.00" in r for r in reasons)
    assert any("in the future" in r for r in reasons)
    assert any(d.value == b'{"not json ' + marker for d in dead), "dead letters are the messages unchanged"
    negative = await ledger.dead_letters(ledger.upstream.calculator, ours, expect=1)
    assert "must not be negative" in dict(negative[0].headers)[REASON_HEADER].decode()


async def test_amounts_beyond_the_stored_range_and_negative_charges_are_dead_lettered_never_parked(
    ledger: Ledger,
) -> None:
    """Money allows up to 10^13, the read models store NUMERIC(14,2) (under 10^12): an amount of 10
    billion or more, or a fact that would take a month's total beyond 10^12, is dead-lettered with its
    reason; the rest of its batch is applied and nothing of it is written. A negative charge is
    dead-lettered at once, even for an account not opened yet (never parked first)."""
    account, user, unopened = account_number(), uuid.uuid4(), account_number()
    await ledger.open_account(account, date(2025, 1, 1))
    await ledger.link(account, user)
    near_max = "9999999999.99"  # under the limit of one amount; 100 of them fill a month's column
    corrections = [ledger.correction(account, f"BIG-{i}-{uid()}", "2025-01", near_max) for i in range(101)]
    await ledger.backoffice(bo.BILLING, corrections)
    over = f"OVER-{uid()}"
    await ledger.backoffice(
        bo.PAYMENTS,
        [
            ledger.payment(account, f"HUGE-{uid()}", "99999999999.99", date(2025, 1, 2)),  # 10^11
            ledger.payment(account, over, "10000000000000.00", date(2025, 1, 2)),  # Money's own limit
            ledger.payment(account, f"OK-{uid()}", "10.00", date(2025, 1, 3)),
            ledger.payment(unopened, f"WAIT-{uid()}", "1.00", date(2025, 1, 3)),  # parked: fine
        ],
    )
    await ledger.charge(unopened, f"NEG-{uid()}", "2025-01", "-5.00")

    expected = [("2025-01", "0.00", "0.00", "999999999999.00", "10.00", "999999999989.00")]

    async def applied() -> bool:
        r = await ledger.get(
            f"/internal/v1/accounts/{account}/services", user, **{"from": "2025-01", "to": "2025-01"}
        )
        return r.status_code == 200 and rows_of(r.json(), "electricity") == expected

    await ledger.wait_for(applied)
    mine = f"ledger-{ledger.svc.instance}.".encode()

    def ours(record: Any) -> bool:
        by_us = dict(record.headers).get(CONSUMER_HEADER, b"").startswith(mine)
        return by_us and (account.encode() in record.value or unopened.encode() in record.value)

    def reasons(records: list[Any]) -> list[str]:
        return sorted(dict(d.headers)[REASON_HEADER].decode() for d in records)

    billing = reasons(await ledger.dead_letters(bo.BILLING, ours, expect=1))
    assert len(billing) == 1 and "would make corrections" in billing[0] and "2025-01" in billing[0], billing
    payments = reasons(await ledger.dead_letters(bo.PAYMENTS, ours, expect=2))
    assert len(payments) == 2, payments
    assert any("99999999999.99 is out of range" in r for r in payments), payments
    assert any("validation failed" in r and "out of range" in r for r in payments), payments
    negative = reasons(await ledger.dead_letters(ledger.upstream.calculator, ours, expect=1))
    assert len(negative) == 1 and "must not be negative" in negative[0], negative
    parked = await ledger.fetch("SELECT event_type FROM ledger_parked WHERE account_no = %s", (unopened,))
    assert parked == [("PaymentReported",)], "the negative charge was not parked"
    stored = await ledger.fetch(
        "SELECT count(*) FROM events WHERE stream_id = %s", (f"ledger:{account}:electricity",)
    )
    assert stored == [(1 + 100 + 1,)], "the opening, 100 corrections, 1 payment: nothing of the refused"


async def test_worker_killed_mid_batch_resumes_and_totals_equal_the_inputs_exactly(ledger: Ledger) -> None:
    account, user = account_number(), uuid.uuid4()
    await ledger.open_account(account, date(2024, 1, 1), opening_balance="0.00")
    await ledger.link(account, user)
    rng = random.Random(7)
    payments = []
    for i in range(4000):
        tiyn = rng.randint(1, 5_000_000)
        paid_on = date(2024, 1, 1) + timedelta(days=rng.randint(0, 365))
        payments.append((f"BULK-{uid()}-{i}", f"{Decimal(tiyn) / 100:.2f}", paid_on))
    messages = [ledger.payment(account, pid, amount, day) for pid, amount, day in payments]
    # 300 redeliveries of bank payments under new event ids: counted once
    messages += [ledger.payment(account, pid, amount, day) for pid, amount, day in rng.sample(payments, 300)]
    total = sum((Decimal(a) for _, a, _ in payments), Decimal("0.00"))
    stream = f"ledger:{account}:electricity"

    async def applied_version() -> int:
        rows = await ledger.fetch(
            "SELECT version FROM ledger_period_streams WHERE account_no = %s AND service_code = 'electricity'",
            (account,),
        )
        return int(rows[0][0]) if rows else 0

    await ledger.backoffice(bo.PAYMENTS, messages)

    # Catch the projection half-way (its batches commit every few tens of milliseconds, so look often),
    # then kill everything at once: relay, ingress and projections die wherever they are, mid-batch.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 90
    while not 1 < (version := await applied_version()) < len(payments) + 1:
        assert version < len(payments) + 1, "everything was applied before the worker could be stopped"
        assert loop.time() < deadline, "the projection made no progress"
        await asyncio.sleep(0.005)
    await ledger.svc.stop_worker()

    # What was committed is a consistent prefix of the stream, exactly.
    version = await applied_version()
    prefix = await ledger.fetch(
        "SELECT coalesce(sum((payload->>'amount')::numeric), 0) FROM events"
        " WHERE stream_id = %s AND stream_version <= %s AND event_type = 'PaymentReceived'",
        (stream, version),
    )
    rows = await ledger.fetch(
        "SELECT opening_balance, accrued, corrections, paid, closing_balance FROM ledger_periods"
        " WHERE account_no = %s AND service_code = 'electricity' ORDER BY period",
        (account,),
    )
    assert sum(r[3] for r in rows) == prefix[0][0]
    for before, row in itertools.pairwise(rows):
        assert row[0] == before[4]

    ledger.svc.start_worker()

    async def all_applied() -> bool:
        return await applied_version() == len(payments) + 1

    await ledger.wait_for(all_applied, timeout_s=120)
    rows = await ledger.fetch(
        "SELECT period, opening_balance, accrued, corrections, paid, closing_balance FROM ledger_periods"
        " WHERE account_no = %s AND service_code = 'electricity' ORDER BY period",
        (account,),
    )
    assert sum(r[4] for r in rows) == total
    assert rows[-1][5] == -total
    per_month: dict[str, Decimal] = {}
    for _, amount, day in payments:
        per_month[f"{day:%Y-%m}"] = per_month.get(f"{day:%Y-%m}", Decimal("0.00")) + Decimal(amount)
    assert {r[0]: r[4] for r in rows if r[4]} == per_month
    for before, row in itertools.pairwise(rows):
        assert row[1] == before[5] and row[5] == row[1] + row[2] + row[3] - row[4]
    assert await ledger.fetch(
        "SELECT count(*), sum(amount) FROM ledger_payments WHERE account_no = %s", (account,)
    ) == [(len(payments), total)]
    r = await ledger.get(f"/internal/v1/accounts/{account}/balance", user)
    assert r.json()["balance"] == f"{-total:.2f}"
    r = await ledger.get(
        f"/internal/v1/accounts/{account}/payments", user, **{"from": "2024-01-01", "to": "2024-12-31"}
    )
    assert len(r.json()) == len([p for p in payments if p[2].year == 2024])


async def test_rebuild_from_the_event_store_equals_the_incremental_read_models(ledger: Ledger) -> None:
    accounts = sorted(ledger.accounts)

    async def caught_up() -> bool:
        lagging = await ledger.fetch(
            "SELECT s.stream_id, s.version, p.version FROM ledger_streams AS s LEFT JOIN ledger_period_streams AS p"
            " USING (account_no, service_code) WHERE p.version IS DISTINCT FROM s.version AND s.account_no = ANY(%s)",
            (accounts,),
        )
        return not lagging

    await ledger.wait_for(caught_up)

    async def snapshot() -> dict[str, Any]:
        mine = " WHERE account_no = ANY(%s)"
        return {
            "periods": await ledger.fetch(
                "SELECT * FROM ledger_periods" + mine + " ORDER BY 1, 2, 3", (accounts,)
            ),
            "streams": await ledger.fetch(
                "SELECT account_no, service_code, version, first_period, last_period, balance"
                " FROM ledger_period_streams" + mine + " ORDER BY 1, 2",
                (accounts,),
            ),
            "payments": await ledger.fetch(
                "SELECT * FROM ledger_payments" + mine + " ORDER BY 1, 2, 3", (accounts,)
            ),
        }

    incremental = await snapshot()
    assert len(incremental["periods"]) > 10 and len(incremental["payments"]) > 4000
    output = await worker_cli(ledger, "rebuild", "ledger-read-models")
    for projection in ("ledger-periods", "ledger-payments"):
        assert f"projection {projection} rebuilt from the event store" in output
    rebuilt = await snapshot()
    assert rebuilt == incremental
    # and the running projection goes on from there: a new payment lands once
    account = next(a for a, service, *_ in incremental["streams"] if service == "electricity")

    async def balance() -> Decimal:
        rows = await ledger.fetch(
            "SELECT balance FROM ledger_period_streams WHERE account_no = %s AND service_code = 'electricity'",
            (account,),
        )
        return Decimal(rows[0][0])

    before = await balance()
    await ledger.backoffice(
        bo.PAYMENTS, [ledger.payment(account, f"AFTER-{uid()}", "1.00", date(2025, 6, 1))]
    )

    async def moved() -> bool:
        return await balance() != before

    await ledger.wait_for(moved)
    assert await balance() == before - Decimal("1.00")
