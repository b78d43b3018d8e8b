"""The outbound check: a back-office consumer that is not Python. kcat (Debian's package) reads our
canonical topics as plain JSON — ReadingSubmitted on calculator.events.v1, AccountLinked and
ServiceRequestSubmitted on accounts.events.v1 — exactly what a billing back-office would subscribe to:

    kcat -b 127.0.0.1:9092 -C -t accounts.events.v1 -p <partition> -o <offset> -e -J -q

(-J wraps each record as JSON: topic, partition, offset, key, and `payload` = the value as a string,
which is our envelope, itself JSON.) The events are produced by the running services: the back-office
opens an account and reports a payment, the customer links the account with that proof, submits a
request and a reading through the public API, and the grid company's reading comes through Kafka.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from typing import Any

import pytest

from backoffice_simulator.generator import Scenario, almaty_today, generate
from backoffice_simulator.kafka import ensure_topics, publish
from backoffice_simulator.ledger import SimLedger
from backoffice_simulator.portal import PortalClient
from contracts.registry import registry
from tests.backoffice.support import end_offsets, fresh_prefix, link_when_ready, new_user, wait_for_events
from tests.support.stack import eventually

pytestmark = pytest.mark.stack
KCAT = shutil.which("kcat") or shutil.which("kafkacat")


def kcat_read(bootstrap: str, topic: str, since: dict[int, int]) -> list[dict[str, Any]]:
    """Records of `topic` from the `since` offsets to the end, read by kcat, values parsed as plain JSON."""
    assert KCAT, "kcat is not installed (deploy/local/stack.sh installs Debian's kcat)"
    lines: list[str] = []
    for partition, offset in sorted(since.items()):
        done = subprocess.run(
            [
                KCAT,
                "-b",
                bootstrap,
                "-C",
                "-t",
                topic,
                "-p",
                str(partition),
                "-o",
                str(offset),
                "-e",
                "-J",
                "-q",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        lines += done.stdout.splitlines()
    records = []
    for line in lines:
        if line.strip():
            record = json.loads(line)
            record["value"] = json.loads(record["payload"])  # our envelope: plain JSON, no schema registry
            records.append(record)
    return records


@pytest.mark.timeout(1800)  # generous bounds on progress: it runs late in CI, on a busy stack
async def test_kcat_reads_our_events_as_plain_json(running_services: str, kafka_bootstrap: str) -> None:
    topics = ["accounts.events.v1", "calculator.events.v1", "ledger.events.v1"]
    since = await end_offsets(kafka_bootstrap, topics)
    world = generate(
        Scenario(
            seed=99,
            accounts=1,
            months=2,
            account_prefix=fresh_prefix(),
            missing_rate=0.0,
            new_accounts_rate=0.0,
        )
    )
    ledger = SimLedger().record_all(world.messages)
    [no] = list(world.households)
    await ensure_topics(kafka_bootstrap)
    await publish(kafka_bootstrap, world.messages, show_progress=False)

    async with PortalClient(running_services) as client:
        await new_user(client)
        proof = ledger.proof(no)
        assert proof is not None
        await link_when_ready(client, proof, kafka_bootstrap, since=since)
        r = await client.request(
            "POST",
            f"/accounts/{no}/requests",
            json={"category": "reading_dispute", "text": "Прошу проверить показания за прошлый месяц."},
            expect=(201,),
        )
        request_id = r.json()["request_id"]
        household = world.households[no]
        assert household.last_reading is not None
        today = almaty_today()
        read_today = household.last_reading < today
        if read_today:
            value = f"{household.meter.value + 42:.2f}"

            async def reading_accepted() -> bool:
                # 404 until the calculator's own projection of AccountLinked has the link
                r = await client.request(
                    "POST",
                    f"/accounts/{no}/readings",
                    json={"reading_date": today.isoformat(), "value": value, "confirm_implausible": True},
                    expect=(201, 404),
                )
                return r.status_code == 201

            await eventually(reading_accepted, timeout_s=300, every_s=2.0)

    def mine(e: dict[str, Any]) -> bool:
        return bool(e.get("payload", {}).get("account_no") == no)

    # Wait with the Python client until the services have published; then read with kcat only.
    await wait_for_events(
        kafka_bootstrap,
        "calculator.events.v1",
        lambda e: mine(e) and e["event_type"] == "ReadingSubmitted",
        since=since,
        count=2,
        timeout_s=300,
    )
    await wait_for_events(
        kafka_bootstrap,
        "accounts.events.v1",
        lambda e: mine(e) and e["event_type"] == "ServiceRequestSubmitted",
        since=since,
        timeout_s=300,
    )

    async def kcat_sees_everything() -> bool:
        accounts = [
            r
            for r in await asyncio.to_thread(
                kcat_read, kafka_bootstrap, "accounts.events.v1", since["accounts.events.v1"]
            )
            if mine(r["value"])
        ]
        calculator = [
            r
            for r in await asyncio.to_thread(
                kcat_read, kafka_bootstrap, "calculator.events.v1", since["calculator.events.v1"]
            )
            if mine(r["value"])
        ]
        types = {r["value"]["event_type"] for r in accounts} | {r["value"]["event_type"] for r in calculator}
        if not {"AccountLinked", "ServiceRequestSubmitted", "ReadingSubmitted"} <= types:
            return False
        for r in accounts + calculator:
            envelope = r["value"]
            assert r["topic"] in ("accounts.events.v1", "calculator.events.v1")
            assert r["key"] == envelope["stream_id"]  # the Kafka key is the stream id
            registry.parse(
                r["topic"], envelope["event_type"], envelope["schema_version"], envelope["payload"]
            )
        linked = next(r["value"] for r in accounts if r["value"]["event_type"] == "AccountLinked")
        assert linked["payload"]["account_no"] == no and linked["producer"] == "accounts"
        request = next(r["value"] for r in accounts if r["value"]["event_type"] == "ServiceRequestSubmitted")
        assert (
            request["payload"]["request_id"] == request_id
            and request["payload"]["category"] == "reading_dispute"
        )
        sources = {
            r["value"]["payload"]["source"]
            for r in calculator
            if r["value"]["event_type"] == "ReadingSubmitted"
        }
        return sources >= {"grid"} and (not read_today or "customer" in sources)

    await eventually(kcat_sees_everything, timeout_s=300, every_s=3.0)
