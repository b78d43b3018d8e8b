"""A few seconds of the load test's mix (tests/load/locustfile.py, locust in its own process) against the
running gateway: every request of the mix must succeed. Never a timing assertion; the measured steps
are `make load` (docs/reliability.md)."""

from __future__ import annotations

import pytest

from tests.load.run import run_load

pytestmark = pytest.mark.stack


@pytest.mark.timeout(900)
async def test_the_load_mix_runs_without_a_single_error(
    running_services: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOAD_TOUR", "1")  # every request kind at least once
    report = await run_load(
        [(2, 10.0)], gateway=running_services, bootstrap=kafka_bootstrap, users=2, label="load-smoke"
    )
    step = report["steps"][0]
    assert len(step["per_request"]) >= 13, sorted(step["per_request"])
    assert step["errors"] == 0, step["error_kinds"]
