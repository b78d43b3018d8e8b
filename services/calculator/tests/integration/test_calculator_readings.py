"""Readings end to end: the API (and the grid company) → ReadingSubmitted → the faust rating agent →
ChargeCalculated on `calculator.events.v1`, with the amounts computed by hand; every rejection rule
records nothing; the what-if, quote and catalog endpoints."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

from calculator.application.readings import today_in_almaty
from contracts.backoffice import READINGS
from contracts.events.calculator import TOPIC as CALCULATOR_TOPIC
from service_runtime.dead_letters import CONSUMER_HEADER, REASON_HEADER
from tests.support.stack import eventually, produce

from .conftest import Calc, TopicWatcher, account_number, backoffice_message


def is_charge(charge_id: str) -> Any:
    return lambda e: e.get("event_type") == "ChargeCalculated" and e["payload"]["charge_id"] == charge_id


async def test_readings_are_validated_recorded_and_rated(calc: Calc) -> None:
    a, b, stranger = account_number(), account_number(), account_number()
    async with (
        TopicWatcher(calc.bootstrap, CALCULATOR_TOPIC) as charges,
        TopicWatcher(calc.bootstrap, f"{READINGS}.dlq") as dlq,
    ):
        serial = await calc.open_account(a, opened_on=dt.date(2025, 1, 1))
        await calc.open_account(b, opened_on=dt.date(2025, 1, 1))
        await calc.open_account(stranger, opened_on=dt.date(2025, 1, 1), link=False)
        await calc.wait_projected([a, b, stranger], linked=[a, b])

        # 1. An accepted reading: 2025-01-01 (install, 1000.00) → 2025-03-01, 1250.00: 59 days, 250 kWh.
        r = await calc.client.post(
            f"/internal/v1/accounts/{a}/readings",
            json={"reading_date": "2025-03-01", "value": "1250.00"},
            headers=calc.auth(),
        )
        assert r.status_code == 201, r.text
        first = r.json()
        assert first["consumption"] == "250.00" and first["previous"] == {
            "date": "2025-01-01",
            "value": "1000.00",
        }
        charge = await calc.published(charges, "ChargeCalculated", "charge_id", f"chg-{first['reading_id']}")
        p = charge["payload"]
        # flat, one piece (2018 row, VAT 12%): 250 × 16.36 = 4090.00; VAT 4090.00 × 0.12 = 490.80; total 4580.80
        assert (p["period"], p["days"], p["consumption_kwh"], p["estimated"]) == (
            "2025-03",
            59,
            "250.00",
            False,
        )
        assert p["lines"] == [
            {
                "from_date": "2025-01-01",
                "to_date": "2025-03-01",
                "tier": "flat",
                "limit_kwh": None,
                "kwh": "250.00",
                "rate": "16.36",
                "amount": "4090.00",
            }
        ]
        assert (p["net_total"], p["vat"], p["total"]) == ("4090.00", "490.80", "4580.80")
        assert charge["stream_id"] == f"meter-readings:{a}"
        await calc.wait_charge(f"chg-{first['reading_id']}")

        # 2. Every rule rejects, says why (code + Russian detail + errors) and records nothing.
        events_before = await calc.fetch("SELECT count(*) FROM events")
        tomorrow = (today_in_almaty() + dt.timedelta(days=1)).isoformat()
        cases = [
            (a, {"reading_date": tomorrow, "value": "1300"}, "date_in_future", "reading_date"),
            (a, {"reading_date": "2025-02-20", "value": "1300"}, "not_after_previous", "reading_date"),
            (a, {"reading_date": "2025-03-20", "value": "1000000"}, "exceeds_meter_capacity", "value"),
            (a, {"reading_date": "2025-03-20", "value": "1300.123"}, "too_many_decimals", "value"),
            (a, {"reading_date": "2025-03-20", "value": "-1"}, "negative", "value"),
            (a, {"reading_date": "2025-03-20", "value": "abc"}, "not_a_number", "value"),
            (a, {"reading_date": "2025-03-20", "value": "1200"}, "less_than_previous", "value"),
            (b, {"reading_date": "2024-12-15", "value": "1100"}, "before_meter_install", "reading_date"),
            (b, {"reading_date": "2025-02-01", "value": "900"}, "less_than_initial_reading", "value"),
            # history: 250 kWh / 59 days = 4.2373 kWh/day; 31 days × 3 × 4.2373 = 394.07 < 500
            (
                a,
                {"reading_date": "2025-04-01", "value": "1750"},
                "implausible_consumption",
                "confirm_implausible",
            ),
        ]
        for account, body, code, field in cases:
            r = await calc.client.post(
                f"/internal/v1/accounts/{account}/readings", json=body, headers=calc.auth()
            )
            assert r.status_code == 422, (code, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            problem = r.json()
            assert problem["code"] == code, problem
            assert (
                problem["errors"][0]["field"] == field
                and problem["errors"][0]["message"] == problem["detail"]
            )
            assert any("а" <= ch <= "я" for ch in problem["detail"].lower()), problem["detail"]  # Russian
        assert "подтвердите" in problem["detail"].lower() and problem["title"] == "Подтвердите показание"
        assert await calc.fetch("SELECT count(*) FROM events") == events_before
        assert [row[0] for row in await calc.fetch("SELECT account_no FROM readings")] == [a]

        # 3. The implausible reading, confirmed: 31 days, 500 kWh × 16.36 = 8180.00 + 981.60 VAT = 9161.60.
        r = await calc.client.post(
            f"/internal/v1/accounts/{a}/readings",
            json={"reading_date": "2025-04-01", "value": 1750, "confirm_implausible": True},
            headers=calc.auth(),
        )
        assert r.status_code == 201, r.text
        second = r.json()
        assert second["confirmed_implausible"] is True
        charge = await calc.published(charges, "ChargeCalculated", "charge_id", f"chg-{second['reading_id']}")
        assert (charge["payload"]["net_total"], charge["payload"]["vat"], charge["payload"]["total"]) == (
            "8180.00",
            "981.60",
            "9161.60",
        )

        # 4. A grid reading takes the same path; an invalid one goes to the DLQ with the reason.
        grid_id, bad_id = uuid.uuid4(), uuid.uuid4()
        await produce(
            calc.bootstrap,
            READINGS,
            [
                (
                    a.encode(),
                    backoffice_message(
                        "GridReadingTaken",
                        {
                            "account_no": a,
                            "meter_serial": serial,
                            "reading_date": "2025-05-01",
                            "value": "1900.00",
                        },
                        grid_id,
                    ),
                ),
                (
                    a.encode(),
                    backoffice_message(
                        "GridReadingTaken",
                        {
                            "account_no": a,
                            "meter_serial": serial,
                            "reading_date": "2025-05-10",
                            "value": "1800.00",
                        },
                        bad_id,
                    ),
                ),
            ],
        )
        # 30 days, 150 kWh × 16.36 = 2454.00 + 294.48 VAT = 2748.48
        charge = await calc.published(charges, "ChargeCalculated", "charge_id", f"chg-{grid_id}")
        assert (charge["payload"]["consumption_kwh"], charge["payload"]["total"]) == ("150.00", "2748.48")
        await dlq.wait_for(lambda e: e.get("event_id") == str(bad_id))
        consumer = f"calculator-{calc.svc.instance}.grid-reading-ingress".encode()

        async def dead_lettered_here() -> bool:
            await dlq.poll()
            return any(
                str(bad_id).encode() in rec.value and dict(rec.headers)[CONSUMER_HEADER] == consumer
                for rec in dlq.records
            )

        await eventually(dead_lettered_here)
        record = next(
            rec
            for rec in dlq.records
            if str(bad_id).encode() in rec.value and dict(rec.headers)[CONSUMER_HEADER] == consumer
        )
        reason = dict(record.headers)[REASON_HEADER].decode()
        assert "less_than_previous" in reason and "меньше предыдущего" in reason
        assert await calc.fetch("SELECT count(*) FROM readings WHERE reading_id = %s", (str(bad_id),)) == [
            (0,)
        ]

        # 5. Two concurrent submissions: exactly one is recorded, the other is refused cleanly.
        responses = await asyncio.gather(
            *(
                calc.client.post(
                    f"/internal/v1/accounts/{a}/readings",
                    json={"reading_date": "2025-05-20", "value": v},
                    headers=calc.auth(),
                )
                for v in ("1950", "1960")
            )
        )
        statuses = sorted(r.status_code for r in responses)
        assert statuses in ([201, 409], [201, 422]), [r.text for r in responses]
        loser = next(r for r in responses if r.status_code != 201).json()
        assert loser["code"] in {"not_after_previous", "reading_conflict"}

        # 6. The readings list.
        r = await calc.client.get(f"/internal/v1/accounts/{a}/readings", headers=calc.auth())
        listed = [(x["reading_date"], x["source"], x["consumption"]) for x in r.json()]
        assert listed[:3] == [
            ("2025-03-01", "customer", "250.00"),
            ("2025-04-01", "customer", "500.00"),
            ("2025-05-01", "grid", "150.00"),
        ]
        assert len(listed) == 4 and listed[3][0] == "2025-05-20"

        # 7. Exactly one charge per reading, on Kafka too.
        reading_ids = [x["reading_id"] for x in r.json()]
        for rid in reading_ids:
            mine = await calc.published(charges, "ChargeCalculated", "charge_id", f"chg-{rid}")
            assert len([e for e in charges.envelopes(is_charge(f"chg-{rid}")) if e == mine]) == 1
        assert await calc.fetch(
            "SELECT count(*) FROM events WHERE event_type = 'ChargeCalculated' AND payload->>'account_no' = %s",
            (a,),
        ) == [(4,)]


async def test_what_if_quote_catalog_and_authorization(calc: Calc) -> None:
    a, stranger = account_number(), account_number()
    await calc.open_account(a, opened_on=dt.date(2025, 1, 1))
    await calc.open_account(stranger, opened_on=dt.date(2025, 1, 1), link=False)
    await calc.wait_projected([a, stranger], linked=[a])
    r = await calc.client.post(
        f"/internal/v1/accounts/{a}/readings",
        json={"reading_date": "2025-05-01", "value": "1900.00"},
        headers=calc.auth(),
    )
    assert r.status_code == 201
    await calc.wait_charge(f"chg-{r.json()['reading_id']}")  # the rating stream's append comes first

    # What-if from the last recorded reading (2025-05-01, 1900.00): 31 days, 100 kWh × 16.36 = 1636.00 + 196.32.
    events_before = await calc.fetch("SELECT count(*) FROM events")
    r = await calc.client.post(
        f"/internal/v1/accounts/{a}/calculation",
        json={"reading_date": "2025-06-01", "reading_value": "2000"},
        headers=calc.auth(),
    )
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["previous"] == {"date": "2025-05-01", "value": "1900.00"}
    assert (result["days"], result["consumption_kwh"], result["tariff_option_applied"]) == (
        31,
        "100.00",
        "flat",
    )
    assert result["lines"] == [
        {
            "from": "2025-05-01",
            "to": "2025-06-01",
            "tier": "flat",
            "limit_kwh": None,
            "kwh": "100.00",
            "rate": "16.36",
            "amount": "1636.00",
        }
    ]
    assert (result["net_total"], result["vat"], result["total"]) == ("1636.00", "196.32", "1832.32")
    r = await calc.client.post(
        f"/internal/v1/accounts/{a}/calculation",
        json={"reading_date": "2025-04-01", "reading_value": "2000"},
        headers=calc.auth(),
    )
    assert r.status_code == 422 and r.json()["code"] == "not_after_previous"
    r = await calc.client.post(
        f"/internal/v1/accounts/{a}/calculation",
        json={"reading_date": "9999-12-31", "reading_value": "2000"},
        headers=calc.auth(),
    )
    assert r.status_code == 422 and r.json()["code"] == "date_in_future", r.text
    assert r.json()["errors"][0]["field"] == "reading_date"
    assert await calc.fetch("SELECT count(*) FROM events") == events_before  # nothing recorded

    # The public quote (no login), tiered, 2 residents, no stove, 2025-09-30 → 2025-10-31 (31 days), 400 kWh:
    # L1 = 90×2×31/30.5 = 182.95, L2 = 160×2×31/30.5 = 325.25 (2025-07 rates 28.95/38.22/47.77, VAT 12%)
    # 182.95×28.95 = 5296.40; 142.30×38.22 = 5438.71; 74.75×47.77 = 3570.81 → net 14305.92, VAT 1716.71
    r = await calc.client.post(
        "/internal/v1/tariffs/quote",
        json={
            "tariff_option": "tiered",
            "residents": 2,
            "electric_stove": False,
            "living_alone": False,
            "meter_digits": 6,
            "previous": {"date": "2025-09-30", "value": "1000"},
            "current": {"date": "2025-10-31", "value": "1400"},
        },
    )
    assert r.status_code == 200, r.text
    quote = r.json()
    assert [(x["tier"], x["limit_kwh"], x["kwh"], x["rate"], x["amount"]) for x in quote["lines"]] == [
        ("1", "182.95", "182.95", "28.95", "5296.40"),
        ("2", "325.25", "142.30", "38.22", "5438.71"),
        ("3", None, "74.75", "47.77", "3570.81"),
    ]
    assert (quote["net_total"], quote["vat"], quote["total"]) == ("14305.92", "1716.71", "16022.63")

    # The catalog, with effective dates (the seed: RATING.md §3).
    r = await calc.client.get("/internal/v1/tariffs")
    catalog = r.json()
    rows = {t["effective_from"]: t for t in catalog["tariffs"]}
    assert rows["2018-03-01"]["flat"] == "16.36" and rows["2018-03-01"]["effective_to"] == "2025-07-01"
    assert rows["2025-07-01"]["tier3"] == "47.77"
    vats = {v["effective_from"]: v["rate"] for v in catalog["vat_rates"]}
    assert vats["2009-01-01"] == "0.12" and vats["2026-01-01"] == "0.16"

    # Authorization: no token → 401; someone else's account → 404 (never 403); unknown → 404.
    r = await calc.client.get(f"/internal/v1/accounts/{a}/readings")
    assert r.status_code == 401 and r.json()["code"] == "not_authenticated"
    for account in (stranger, account_number(), "abc"):
        r = await calc.client.post(
            f"/internal/v1/accounts/{account}/readings",
            json={"reading_date": "2025-06-01", "value": "1"},
            headers=calc.auth(),
        )
        assert r.status_code == 404 and r.json()["code"] == "account_not_found"
    r = await calc.client.get(f"/internal/v1/accounts/{a}/readings", headers=calc.auth(uuid.uuid4()))
    assert r.status_code == 404

    # Request validation is problem+json too.
    r = await calc.client.post(
        f"/internal/v1/accounts/{a}/readings", json={"value": "1"}, headers=calc.auth()
    )
    assert (
        r.status_code == 422
        and r.json()["code"] == "validation_error"
        and r.json()["errors"][0]["field"] == "reading_date"
    )

    # Consumption chart and the flat/tiered comparison.
    async def charged() -> bool:
        return bool(await calc.fetch("SELECT 1 FROM charges WHERE account_no = %s", (a,)))

    await eventually(charged)
    r = await calc.client.get(f"/internal/v1/accounts/{a}/consumption?months=24", headers=calc.auth())
    assert r.status_code == 200 and len(r.json()) == 24
    r = await calc.client.get(f"/internal/v1/accounts/{a}/tariff-comparison", headers=calc.auth())
    comparison = r.json()
    assert comparison["flat_total"] != "0.00" and comparison["cheaper"] in {"flat", "tiered", "same"}
