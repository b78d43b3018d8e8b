"""The fault campaign in its small size, inside `make test`: on its own isolated stack (never the shared
one), a few hundred back-office messages with chaos while every worker is killed once, Kafka and
PostgreSQL are restarted and Redis is flushed; then the audit (tests/faults/audit.py) must find nothing.
The full size is `make faults` (docs/reliability.md)."""

from __future__ import annotations

import os

import pytest

from tests.faults.run import run_campaign

pytestmark = pytest.mark.stack


@pytest.mark.timeout(900)
async def test_no_event_is_lost_or_applied_twice_through_crashes_and_outages() -> None:
    seed = int(os.environ.get("FAULTS_SEED", "20261126"))
    data = await run_campaign("small", seed, strict=os.environ.get("FAULTS_STRICT") == "1")
    assert data["losses"] == 0 and data["duplicates"] == 0 and not data["problems"], "\n".join(
        data["problems"]
    )
    assert set(data["workers_killed"]) == {"identity", "accounts", "ledger", "calculator", "receipts"}
    assert data["faults_by_kind"].keys() == {
        "kill-worker",
        "kafka-restart",
        "postgres-restart",
        "redis-flush",
    }
