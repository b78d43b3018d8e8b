"""Receipts' set-based projections and bulk issuing, on random input, against PostgreSQL (no Kafka):

- applying a random history in random batches (each projection's batch in its own transaction, as its
  consumer does) gives exactly the tables, bills and ReceiptIssued events of applying it one event at a
  time: ledger entries (re-posted accruals, payments reversed in the same batch or a later one,
  corrections), the months re-rolled from them, charges, readings, billed periods, bills issued when
  complete and only then;
- applying a batch again right after it (a batch redone, the runner's de-duplication aside) changes
  nothing, nor does the last batch (the PeriodBilled) again: no second bill;
- the facts read for many bills at once are those read for each bill alone (the same snapshots).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from decimal import Decimal as D
from typing import Any

from pydantic import BaseModel

from contracts.events import accounts as acc
from contracts.events import calculator as calc
from contracts.events import ledger as led
from contracts.registry import registry
from receipts.adapters.projections import AccountsProjection, CalculatorProjection, LedgerProjection
from receipts.adapters.read_models import load_bill_facts, load_many_bill_facts
from receipts.application.issuing import receipt_id_for
from receipts.domain.bill import build_snapshot
from receipts.settings import MIGRATIONS_DIR
from service_runtime.consumers import CanonicalEvent
from service_runtime.db import open_pool
from service_runtime.eventstore import EventStore
from service_runtime.migrations import migrate_to_head
from tests.support.messages import canonical_envelope

SERVICE = "electricity"
PERIODS = ["2025-03", "2025-04", "2025-05", "2025-06"]


def _charge(charge_id: str, no: str, period: str, kwh: D, start: date) -> calc.ChargeCalculated:
    amount = (kwh * D("20.44")).quantize(D("0.01"))
    vat = (amount * D("0.12")).quantize(D("0.01"))
    end = start + timedelta(days=30)
    return calc.ChargeCalculated(
        charge_id=charge_id,
        account_no=no,
        period=period,
        previous=calc.ReadingPoint(date=start, value=D("100.00")),
        current=calc.ReadingPoint(date=end, value=D("100.00") + kwh),
        days=30,
        consumption_kwh=kwh,
        tariff_option_applied="flat",
        lines=[
            calc.ChargeLine(
                from_date=start,
                to_date=end,
                tier="flat",
                limit_kwh=None,
                kwh=kwh,
                rate=D("20.44"),
                amount=amount,
            )
        ],
        net_total=amount,
        vat=vat,
        total=amount + vat,
    )


def _history(rng: random.Random) -> list[CanonicalEvent]:
    """Accounts, ledger and calculator events of a few accounts, the streams interleaved at random (each
    in its own order), then the PeriodBilled of every account's periods (so each bill is issued from the
    whole history, whatever the batches)."""
    streams: list[list[tuple[str, BaseModel]]] = []
    billed: list[tuple[str, BaseModel]] = []
    catalog = "tariff-catalog-test"
    streams.append(
        [
            (catalog, calc.TariffPublished(effective_from=date(2025, 1, 1), flat=D("20.44"), tier1=D("18.5"),
                                           tier2=D("23.1"), tier3=D("30.2"), norms=[])),
            (catalog, calc.VatRateChanged(effective_from=date(2025, 1, 1), rate=D("0.12"))),
            (catalog, calc.TariffPublished(effective_from=date(2025, 5, 1), flat=D("21.00"), tier1=D("19"),
                                           tier2=D("24"), tier3=D("31"), norms=[])),
        ]
    )  # fmt: skip
    for _ in range(12):
        no = str(rng.randint(10**11, 10**12 - 1))
        serial = f"M{no}"
        accounts: list[tuple[str, BaseModel]] = [
            (acc.account_stream(no), acc.AccountOpened(
                account_no=no, payer_name=f"Плательщик {no}", address="г. Алматы, ул. Абая, д. 1",
                residents=rng.randint(0, 4), electric_stove=rng.random() < 0.3, living_alone=False,
                tariff_option="flat", district_office_code="01", opened_on=date(2025, 1, 1))),
            (acc.account_stream(no), acc.MeterInstalled(account_no=no, serial=serial, digits=6,
                                                        installed_on=date(2025, 1, 1), initial_reading=D("0"))),
        ]  # fmt: skip
        if rng.random() < 0.5:
            accounts.append(
                (acc.account_stream(no), acc.ResidentsChanged(account_no=no, residents=rng.randint(1, 5),
                                                              effective_from=date(2025, 4, 15)))
            )  # fmt: skip
        ledger_id = led.ledger_stream(no, SERVICE)
        ledger: list[tuple[str, BaseModel]] = [
            (ledger_id, led.OpeningBalanceSet(account_no=no, service_code=SERVICE, period="2025-03",
                                              amount=D(rng.randint(-5000, 5000)) / 100))
        ]  # fmt: skip
        calculator: list[tuple[str, BaseModel]] = []
        readings_id = f"meter-readings:{no}"
        payments: list[str] = []
        for i, period in enumerate(PERIODS):
            charge_id = f"chg-{no}-{period}"
            kwh = D(rng.randint(50, 400))
            start = date(2025, 3 + i, 1)
            calculator.append((readings_id, calc.ReadingSubmitted(
                reading_id=f"r-{no}-{period}", account_no=no, meter_serial=serial,
                reading_date=start + timedelta(days=30), value=D("100.00") + kwh, source="grid")))  # fmt: skip
            charge = _charge(charge_id, no, period, kwh, start)
            calculator.append((readings_id, charge))
            if rng.random() < 0.3:  # re-rated: the last one counts
                charge = _charge(charge_id, no, period, kwh + 1, start)
                calculator.append((readings_id, charge))
            posted = rng.random() < 0.85  # else the period is billed but not posted: no bill
            if posted:
                ledger.append((ledger_id, led.AccrualPosted(
                    account_no=no, service_code=SERVICE, charge_id=charge_id, period=period,
                    amount=charge.total - 1, consumption_kwh=kwh, tariff="flat")))  # fmt: skip
                ledger.append((ledger_id, led.AccrualPosted(
                    account_no=no, service_code=SERVICE, charge_id=charge_id, period=period,
                    amount=charge.total, consumption_kwh=charge.consumption_kwh, tariff="flat")))  # fmt: skip
            for _ in range(rng.randint(0, 2)):
                payment_id = f"pay-{uuid.uuid4().hex[:8]}"
                payments.append(payment_id)
                ledger.append((ledger_id, led.PaymentReceived(
                    account_no=no, service_code=SERVICE, payment_id=payment_id, paid_on=start + timedelta(days=10),
                    period=period, amount=D(rng.randint(100, 90000)) / 100, bank="Банк")))  # fmt: skip
            if payments and rng.random() < 0.4:
                ledger.append((ledger_id, led.PaymentReversed(
                    account_no=no, service_code=SERVICE, payment_id=rng.choice(payments), period=period,
                    amount=D("1.00"), reason="Ошибочный платёж")))  # fmt: skip
            if rng.random() < 0.3:
                ledger.append((ledger_id, led.CorrectionPosted(
                    account_no=no, service_code=SERVICE, correction_id=f"cor-{no}-{period}", period=period,
                    amount=D(rng.randint(-3000, 3000)) / 100, reason="Перерасчёт")))  # fmt: skip
            billed.append(
                (f"billing-period:{no}:{period}", calc.PeriodBilled(account_no=no, period=period,
                                                                   charge_ids=[charge_id]))
            )  # fmt: skip
        streams += [accounts, ledger, calculator]
    rng.shuffle(billed)
    order: list[tuple[str, BaseModel]] = []
    queues = [list(s) for s in streams]
    while any(queues):
        queue = rng.choice([q for q in queues if q])
        order.append(queue.pop(0))
    order += billed
    versions: dict[str, int] = {}
    events = []
    for offset, (stream_id, payload) in enumerate(order):
        versions[stream_id] = versions.get(stream_id, 0) + 1
        topic = registry.spec_of(payload).topic
        envelope = canonical_envelope(stream_id, versions[stream_id], payload, topic.split(".")[0])
        events.append(CanonicalEvent(envelope, payload, topic, 0, offset))
    return events


_TABLES = {
    "accounts": "SELECT * FROM accounts ORDER BY 1",
    "account_attributes": "SELECT * FROM account_attributes ORDER BY 1, 2, 3",
    "meters": "SELECT * FROM meters ORDER BY 1, 2, 3",
    "ledger_entries": "SELECT * FROM ledger_entries ORDER BY 1, 2, 3, 4",
    "service_periods": "SELECT * FROM service_periods ORDER BY 1, 2, 3",
    "tariff_rows": "SELECT * FROM tariff_rows ORDER BY 1",
    "vat_rates": "SELECT * FROM vat_rates ORDER BY 1",
    "readings": "SELECT * FROM readings ORDER BY 1, 2",
    "charges": "SELECT * FROM charges ORDER BY 1, 2",
    "billed_periods": "SELECT account_no, period, charge_ids FROM billed_periods ORDER BY 1, 2",
    # A bill's issue time differs between the runs; everything else must not.
    "receipts": "SELECT receipt_id, account_no, period, amount_due, overpayment, due_date,"
    " snapshot - 'issued_at' FROM receipts ORDER BY 2, 3",
    "pdf_renders": "SELECT receipt_id, priority FROM pdf_renders ORDER BY 1",
    "events": "SELECT stream_id, stream_version, event_type, topic, producer, payload - 'content_hash'"
    " FROM events ORDER BY 1, 2",
}


async def _state(pool: Any) -> dict[str, list[tuple[Any, ...]]]:
    async with pool.connection() as conn:
        return {name: await (await conn.execute(query)).fetchall() for name, query in _TABLES.items()}  # type: ignore[arg-type]


def _projections(store: EventStore) -> dict[str, Any]:
    return {
        acc.TOPIC: AccountsProjection(store),
        led.TOPIC: LedgerProjection(store),
        calc.TOPIC: CalculatorProjection(store),
    }


async def _apply(pool: Any, projections: dict[str, Any], batch: Sequence[CanonicalEvent]) -> None:
    """A poll batch: each projection's events in its own transaction (pipeline mode, as the runner's)."""
    for topic, projection in projections.items():
        mine = [e for e in batch if e.topic == topic and e.envelope.event_type in projection.handles]
        if mine:
            async with pool.connection() as conn, conn.pipeline(), conn.transaction():
                await projection.apply_batch(conn, mine)


async def _migrated(make_database: Callable[[], str]) -> str:
    dsn = make_database()
    await asyncio.to_thread(migrate_to_head, MIGRATIONS_DIR, dsn)
    return dsn


async def test_batches_equal_one_by_one_and_a_redelivery_changes_nothing(
    make_database: Callable[[], str],
) -> None:
    rng = random.Random()
    events = _history(rng)
    store = EventStore(producer="receipts")
    one_pool = await open_pool(await _migrated(make_database), max_size=2, name="one-by-one")
    batch_pool = await open_pool(await _migrated(make_database), max_size=2, name="batches")
    try:
        one = _projections(store)
        for event in events:
            projection = one[event.topic]
            if event.envelope.event_type in projection.handles:
                async with one_pool.connection() as conn, conn.transaction():
                    await projection.apply(conn, event)
        expected = await _state(one_pool)
        assert len(expected["receipts"]) > 0, "no bill issued: the history is too thin"
        assert len(expected["receipts"]) < len(expected["billed_periods"]), "every bill ready: too thick"
        assert any(r[11] for r in expected["ledger_entries"]), "no payment reversed"

        batched = _projections(store)
        batches: list[list[CanonicalEvent]] = []
        at = 0
        while at < len(events):
            size = rng.choice([1, 3, 17, 60, 500])
            batches.append(events[at : at + size])
            at += size
        for batch in batches:
            await _apply(batch_pool, batched, batch)
            if rng.random() < 0.5:  # and again: a batch redone (the runner's marks aside) changes nothing
                await _apply(batch_pool, batched, batch)
        assert await _state(batch_pool) == expected
        await _apply(batch_pool, batched, batches[-1])  # the bills' inputs again: no second bill
        assert await _state(batch_pool) == expected

        # The facts of all bills read at once are those of each bill read alone.
        async with batch_pool.connection() as conn:
            cur = await conn.execute(
                "SELECT r.account_no, r.period, b.charge_ids, r.issued_at FROM receipts r"
                " JOIN billed_periods b USING (account_no, period)"
            )
            bills = [(a, p, [str(c) for c in ids], at) for a, p, ids, at in await cur.fetchall()]
            issued_at = bills[0][3]
            keys = [(a, p, ids) for a, p, ids, _ in bills]
            ids = [receipt_id_for(a, p) for a, p, _ in keys]
            many = await load_many_bill_facts(conn, keys, receipt_ids=ids, issued_at=issued_at)
            for (account_no, period, charge_ids), receipt_id, facts in zip(keys, ids, many, strict=True):
                alone = await load_bill_facts(
                    conn, account_no, period, charge_ids, receipt_id=receipt_id, issued_at=issued_at
                )
                assert facts is not None and alone is not None
                assert build_snapshot(facts) == build_snapshot(alone)
    finally:
        await one_pool.close()
        await batch_pool.close()
