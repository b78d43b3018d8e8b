"""The billing run's bulk append (`OwnEvents.bulk_append`): events and mirror tables written set-based
must be exactly what appending and projecting the events one by one gives (`OwnEvents.rebuild` replays
the store through `project()`), per-stream versions continue each stream, and a repeated batch (the same
deterministic event ids) appends nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from psycopg import errors
from pydantic import BaseModel

from calculator.adapters.own_events import OwnEvents
from calculator.application.charges import ADJUSTMENT_REASON, charge_from
from calculator.domain.billing import billing_period_stream, event_id, meter_readings_stream
from calculator.domain.rating import AccountAttributes, MeterReading, rate
from calculator.domain.tariffs import seed_catalog
from calculator.settings import MIGRATIONS_DIR
from contracts.events.calculator import EstimateReversed, PeriodBilled, ReadingSubmitted
from service_runtime.db import Connection, open_pool
from service_runtime.eventstore import EventStore
from service_runtime.migrations import migrate_to_head

MIRRORS = {
    "readings": "SELECT reading_id, account_no, meter_serial, reading_date, value, source, consumption_kwh,"
    " confirmed_implausible, event_id, stream_version FROM readings ORDER BY reading_id",
    "charges": "SELECT charge_id, account_no, period, estimated, reading_id, from_date, to_date, days,"
    " consumption_kwh, tariff_option_applied, net_total, vat, total, reversed_by, event_id, adjusted,"
    " adjustments FROM charges ORDER BY charge_id",
    "estimate_reversals": "SELECT * FROM estimate_reversals ORDER BY correction_id",
    "charge_adjustments": "SELECT correction_id, charge_id, account_no, period, amount FROM charge_adjustments"
    " ORDER BY correction_id",
    "period_billing": "SELECT account_no, period, status, charge_ids FROM period_billing ORDER BY 1, 2",
}


async def snapshot(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for table, query in MIRRORS.items():
        cur = await conn.execute(query)
        out[table] = await cur.fetchall()
    return out


async def test_bulk_append_matches_one_by_one_projection(make_database: Callable[[], str]) -> None:
    dsn = make_database()
    await asyncio.to_thread(migrate_to_head, MIGRATIONS_DIR, dsn)
    pool = await open_pool(dsn, max_size=2, name="bulk-append-test")
    own = OwnEvents(EventStore(producer="calculator"))
    catalog = seed_catalog()
    attrs = AccountAttributes("tiered", 3, False, False, 6)  # type: ignore[arg-type]
    a, b = "100000000001", "100000000002"
    period = "2025-09"
    try:
        async with pool.connection() as conn:
            # A's accepted reading (the API's append), then its charge and both estimates in one batch.
            reading = ReadingSubmitted(
                reading_id="r-a-1",
                account_no=a,
                meter_serial="M1",
                reading_date=dt.date(2025, 10, 3),
                value=Decimal("1350.00"),
                source="customer",
            )
            actual = rate(
                MeterReading(dt.date(2025, 9, 1), Decimal("1000")),
                MeterReading(dt.date(2025, 10, 3), Decimal("1350")),
                attrs,
                catalog,
            )
            await own.append_reading(conn, 0, reading, actual.consumption_kwh, uuid.uuid4())
            chg = charge_from(
                "chg-r-a-1", a, "2025-10", actual, previous=actual.previous, current=actual.current
            )
            estimated = rate(
                MeterReading(dt.date(2025, 9, 1), Decimal("0")),
                MeterReading(dt.date(2025, 10, 1), Decimal("240")),
                attrs,
                catalog,
            )
            est_a = charge_from(f"est-{a}-{period}", a, period, estimated, estimated=True)
            est_b = charge_from(f"est-{b}-{period}", b, period, estimated, estimated=True)
            late = EstimateReversed(
                correction_id=f"rev-r-b-9-{period}",
                account_no=b,
                period="2025-10",
                amount=-est_b.total,
                reversed_charge_ids=[est_b.charge_id],
            )
            batch: list[tuple[str, list[tuple[BaseModel, uuid.UUID]]]] = [
                (meter_readings_stream(a), [(chg, event_id("ChargeCalculated", chg.charge_id))]),
                (
                    billing_period_stream(a, period),
                    [
                        (est_a, event_id("ChargeCalculated", est_a.charge_id)),
                        (
                            PeriodBilled(account_no=a, period=period, charge_ids=[est_a.charge_id]),
                            event_id("PeriodBilled", f"{a}:{period}"),
                        ),
                    ],
                ),
                (
                    billing_period_stream(b, period),
                    [
                        (est_b, event_id("ChargeCalculated", est_b.charge_id)),
                        (
                            PeriodBilled(account_no=b, period=period, charge_ids=[est_b.charge_id]),
                            event_id("PeriodBilled", f"{b}:{period}"),
                        ),
                    ],
                ),
                (
                    billing_period_stream(b, "2025-10"),
                    [(late, event_id("EstimateReversed", late.correction_id))],
                ),
            ]
            assert await own.bulk_append(conn, batch) == 6

            # A batch with an adjustment takes the event-by-event projection (the general path).
            adjustment = EstimateReversed(
                correction_id=f"adj1-{est_a.charge_id}",
                account_no=a,
                period=period,
                amount=Decimal("-1.25"),
                reversed_charge_ids=[est_a.charge_id],
                reason=ADJUSTMENT_REASON,
            )
            billed_b = PeriodBilled(account_no=b, period="2025-10", charge_ids=[])
            assert (
                await own.bulk_append(
                    conn,
                    [
                        (
                            billing_period_stream(a, period),
                            [(adjustment, event_id("ChargeAdjusted", adjustment.correction_id))],
                        ),
                        (
                            billing_period_stream(b, "2025-10"),
                            [(billed_b, event_id("PeriodBilled", f"{b}:2025-10"))],
                        ),
                    ],
                )
                == 2
            )

            cur = await conn.execute(
                "SELECT stream_id, array_agg(stream_version ORDER BY position), array_agg(event_type"
                " ORDER BY position) FROM events GROUP BY stream_id ORDER BY stream_id"
            )
            assert await cur.fetchall() == [
                (
                    billing_period_stream(a, period),
                    [1, 2, 3],
                    ["ChargeCalculated", "PeriodBilled", "EstimateReversed"],
                ),
                (billing_period_stream(b, period), [1, 2], ["ChargeCalculated", "PeriodBilled"]),
                (billing_period_stream(b, "2025-10"), [1, 2], ["EstimateReversed", "PeriodBilled"]),
                (meter_readings_stream(a), [1, 2], ["ReadingSubmitted", "ChargeCalculated"]),
            ]
            bulk = await snapshot(conn)
            assert [r[0] for r in bulk["charges"]] == [chg.charge_id, est_a.charge_id, est_b.charge_id]
            assert bulk["charges"][2][13] == late.correction_id  # est-b reversed by the late true-up
            assert bulk["charges"][1][15:] == (Decimal("-1.25"), 1)  # est-a adjusted once
            assert bulk["period_billing"] == [
                (a, period, "billed", [est_a.charge_id]),
                (b, period, "billed", [est_b.charge_id]),
                (b, "2025-10", "billed", []),
            ]

            # Exactly once: the same batch again (same deterministic ids) appends nothing.
            with pytest.raises(errors.UniqueViolation):
                await own.bulk_append(conn, batch)
            assert await snapshot(conn) == bulk

            # The one-by-one projection of the same events gives the same tables.
            await own.rebuild(conn)
            assert await snapshot(conn) == bulk
    finally:
        await pool.close()
