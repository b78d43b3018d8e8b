"""The walking skeleton: every app runs under the local stack's process manager, and one real read goes
from a back-office message through ingest, event store, outbox relay, Kafka, projection and the
service's internal API to the gateway's public API."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from contracts import backoffice
from tests.support.stack import APP_PORTS, eventually, produce


async def test_every_app_is_alive_and_ready(running_services: str) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        for name, port in APP_PORTS.items():
            health = await client.get(f"http://127.0.0.1:{port}/healthz")
            assert health.status_code == 200 and health.json()["status"] == "ok", name
            ready = await client.get(f"http://127.0.0.1:{port}/readyz")
            assert ready.status_code == 200, (name, ready.text)


async def test_a_back_office_fact_reaches_the_public_api(running_services: str, kafka_bootstrap: str) -> None:
    code = f"T{uuid.uuid4().hex[:6].upper()}"
    office: dict[str, Any] = {
        "code": code,
        "name": "Медеуский РОЭС",
        "address": "г. Алматы, пр. Достык, 12",
        "phone": "+7 727 000 00 00",
        "hours": "Пн–Пт 09:00–18:00",
    }
    message = {
        "event_id": str(uuid.uuid4()),
        "event_type": "DistrictOfficeUpdated",
        "schema_version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "producer": "backoffice",
        "payload": office,
    }
    await produce(kafka_bootstrap, backoffice.REFERENCE, [(code.encode(), orjson.dumps(message))])
    request_id = uuid.uuid4().hex

    async with httpx.AsyncClient(base_url=running_services, timeout=5) as client:

        async def visible() -> bool:
            response = await client.get("/api/v1/district-offices", headers={"X-Request-ID": request_id})
            assert response.status_code == 200, response.text
            return any(row["code"] == code for row in response.json())

        await eventually(visible, timeout_s=60)
        rows = (await client.get("/api/v1/district-offices")).json()
        assert next(r for r in rows if r["code"] == code) == office
        spec = (await client.get("/api/v1/openapi.json")).json()
        assert "/api/v1/district-offices" in spec["paths"]
