"""Test data through the real ingest path: back-office messages on `backoffice.*.v1`
(contracts/backoffice.py), the way the billing back-office, the banks and the grid company send them.

Every helper validates its payload with the contract's model first, so a test can't send what the
back-office never would.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson

from contracts import backoffice
from tests.support.stack import produce


def new_account_no() -> str:
    """A fresh 12-digit account number (the topics are shared: never reuse one)."""
    return "9" + "".join(random.choice("0123456789") for _ in range(11))


def _message(event_type: str, payload: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "event_type": event_type,
            "schema_version": 1,
            "occurred_at": datetime.now(UTC).isoformat(),
            "producer": "backoffice",
            "payload": payload,
        }
    )


@dataclass(frozen=True)
class Household:
    account_no: str
    payer_name: str = "Ахметова Динара Сериковна"
    address: str = "г. Алматы, ул. Абая, 10, кв. 5"
    residents: int = 2
    electric_stove: bool = False
    living_alone: bool = False
    tariff_option: str = "tiered"
    district_office_code: str = "02"
    opened_on: date = date(2025, 1, 1)
    meter_serial: str = "CE102-0045871"
    meter_digits: int = 6
    initial_reading: Decimal = Decimal("1000.00")


async def open_account(bootstrap: str, household: Household) -> None:
    payload = backoffice.AccountOpened(
        account_no=household.account_no,
        payer_name=household.payer_name,
        address=household.address,
        residents=household.residents,
        electric_stove=household.electric_stove,
        living_alone=household.living_alone,
        tariff_option=household.tariff_option,  # type: ignore[arg-type]
        district_office_code=household.district_office_code,
        opened_on=household.opened_on,
        meter=backoffice.MeterSpec(
            serial=household.meter_serial,
            digits=household.meter_digits,
            installed_on=household.opened_on,
            initial_reading=household.initial_reading,
        ),
    ).model_dump(mode="json")
    await produce(
        bootstrap, backoffice.ACCOUNTS, [(household.account_no.encode(), _message("AccountOpened", payload))]
    )


async def report_payment(
    bootstrap: str, account_no: str, amount: str, paid_on: date, bank: str = "Kaspi Bank"
) -> str:
    payment_id = f"TEST-{uuid.uuid4().hex[:16].upper()}"
    payload = backoffice.PaymentReported(
        payment_id=payment_id, account_no=account_no, amount=Decimal(amount), paid_on=paid_on, bank=bank
    ).model_dump(mode="json")
    await produce(
        bootstrap, backoffice.PAYMENTS, [(account_no.encode(), _message("PaymentReported", payload))]
    )
    return payment_id


async def grid_reading(bootstrap: str, account_no: str, serial: str, reading_date: date, value: str) -> None:
    payload = backoffice.GridReadingTaken(
        account_no=account_no, meter_serial=serial, reading_date=reading_date, value=Decimal(value)
    ).model_dump(mode="json")
    await produce(
        bootstrap, backoffice.READINGS, [(account_no.encode(), _message("GridReadingTaken", payload))]
    )


async def close_period(bootstrap: str, period: str) -> None:
    payload = backoffice.PeriodClosed(period=period).model_dump(mode="json")
    await produce(bootstrap, backoffice.BILLING, [(period.encode(), _message("PeriodClosed", payload))])


async def district_office(bootstrap: str, code: str, name: str, address: str, phone: str, hours: str) -> None:
    payload = backoffice.DistrictOfficeUpdated(
        code=code, name=name, address=address, phone=phone, hours=hours
    ).model_dump(mode="json")
    await produce(
        bootstrap, backoffice.REFERENCE, [(code.encode(), _message("DistrictOfficeUpdated", payload))]
    )


class EventWatch:
    """Watches canonical topics from their current ends (start it before producing), to wait until a
    service published what a test needs:

        async with EventWatch(bootstrap, ["accounts.events.v1"]) as watch:
            await open_account(...)
            await watch.wait_for("AccountOpened", account_no=no)
    """

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self._bootstrap = bootstrap
        self._topics = topics
        self._consumer: Any = None
        self._seen: list[dict[str, Any]] = []

    async def __aenter__(self) -> EventWatch:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.structs import TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False)
        await consumer.start()
        partitions = []
        for topic in self._topics:
            for _ in range(50):
                found = consumer.partitions_for_topic(topic)
                if found:
                    break
                await consumer._client.force_metadata_update()
            partitions += [TopicPartition(topic, p) for p in sorted(found or ())]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for partition in partitions:
            await consumer.position(partition)
        self._consumer = consumer
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def wait_for(self, event_type: str, *, timeout_s: float = 90.0, **payload: Any) -> dict[str, Any]:
        """The first event of `event_type` whose payload has these values (seen earlier or arriving now)."""
        return (await self.wait_for_all(event_type, count=1, timeout_s=timeout_s, **payload))[0]

    async def wait_for_all(
        self, event_type: str, *, count: int, timeout_s: float = 90.0, **payload: Any
    ) -> list[dict[str, Any]]:
        """At least `count` events of `event_type` whose payload has these values."""
        import asyncio

        def match(event: dict[str, Any]) -> bool:
            body = event.get("payload") or {}
            return event.get("event_type") == event_type and all(
                str(body.get(k)) == str(v) for k, v in payload.items()
            )

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            found = [event for event in self._seen if match(event)]
            if len(found) >= count:
                return found
            if loop.time() > deadline:
                raise AssertionError(f"{len(found)} of {count} {event_type} {payload} within {timeout_s}s")
            batch = await self._consumer.getmany(timeout_ms=300)
            for records in batch.values():
                for record in records:
                    try:
                        self._seen.append(orjson.loads(record.value))
                    except orjson.JSONDecodeError:
                        continue
