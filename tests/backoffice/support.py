"""Helpers of the back-office cross-service tests: fresh account numbers, users, and waiting on Kafka."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from backoffice_simulator.portal import PortalClient


def fresh_prefix() -> str:
    """Six digits no one else uses (the demo uses 7701…/7702…): accounts are prefix + 6 digits."""
    return f"9{secrets.randbelow(10**5):05d}"


async def new_user(client: PortalClient) -> tuple[str, str]:
    email = f"bosim-{uuid.uuid4().hex[:12]}@example.kz"
    password = secrets.token_urlsafe(16)
    r = await client.register(email, password, "Тестов Тест Тестович")
    assert r.status_code == 201, r.text
    await client.login(email, password)
    return email, password


Offsets = dict[str, dict[int, int]]  # topic → partition → offset


async def end_offsets(bootstrap: str, topics: list[str]) -> Offsets:
    """Where each partition ends now: read from here to see only what comes next.

    (Not timestamps: the relays stamp records with the event's `occurred_at`, which may be in the past.)
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        result: Offsets = {}
        for topic in topics:
            partitions = consumer.partitions_for_topic(topic)
            if partitions is None:
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(topic) or set()
            ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
            result[topic] = {tp.partition: offset for tp, offset in ends.items()}
        return result
    finally:
        await consumer.stop()


async def wait_for_events(
    bootstrap: str,
    topic: str,
    matches: Callable[[dict[str, Any]], bool],
    *,
    since: Offsets,
    count: int = 1,
    timeout_s: float = 120.0,
) -> list[dict[str, Any]]:
    """Canonical events (parsed envelopes) of `topic` after the `since` offsets that match, until `count`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        tps = [TopicPartition(topic, p) for p in sorted(since[topic])]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, since[topic][tp.partition])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(found) < count and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    try:
                        event = json.loads(record.value)
                    except (TypeError, ValueError):
                        continue
                    if isinstance(event, dict) and matches(event):
                        found.append(event)
    finally:
        await consumer.stop()
    return found


async def link_when_ready(
    client: PortalClient, proof: dict[str, str], bootstrap: str, *, since: Offsets, timeout_s: float = 150.0
) -> None:
    """Link once the ledger has published the proof's payment (the accounts service follows it closely).

    The accounts service allows 5 failed proofs per user and account in 15 minutes, so failures are
    spent sparingly: wait for the signal on Kafka first, then at most 4 attempts, further and further
    apart (a success clears the user's counter, so linking one account after the other stays under it).
    """
    no = proof["account_no"]
    amount = proof["last_payment_amount"]

    def is_proof_payment(e: dict[str, Any]) -> bool:
        p = e.get("payload", {})
        return (
            e.get("event_type") == "PaymentReceived"
            and p.get("account_no") == no
            and p.get("amount") == amount
        )

    seen = await wait_for_events(
        bootstrap, "ledger.events.v1", is_proof_payment, since=since, timeout_s=timeout_s
    )
    assert seen, f"the ledger never published the payment {amount} of {no}"
    for wait in (2.0, 4.0, 8.0, 16.0):  # 4 failures at most: under the limit of 5
        await asyncio.sleep(wait)
        r = await client.link(no, proof["last_payment_month"], amount)
        if r.status_code == 201:
            return
        assert r.status_code == 422, r.text
    raise AssertionError(f"the proof {proof} was refused four times after the ledger had the payment")
