"""The load driver's report: percentiles, and the ERROR lines it reads from the isolated stack's log."""

from __future__ import annotations

from pathlib import Path

from tests.load.run import log_since, log_size, logged_errors, percentile


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 99) == 99.0
    assert percentile([], 50) == 0.0
    assert percentile([7.0], 99) == 7.0


def test_logged_errors_counts_error_records_and_tracebacks_by_process(tmp_path: Path) -> None:
    log = tmp_path / "services.log"
    log.write_text(
        '03:10:00 accounts-worker.1 | {"level": "ERROR", "logger": "aiokafka", "message": "start-up"}\n'
    )
    offset = log_size(log)
    with log.open("a") as handle:
        handle.write(
            "\n".join(
                [
                    '03:11:51 ledger-worker.1     | {"level": "INFO", "logger": "ledger", "message": "parked"}',
                    '03:11:52 identity-api.1      | {"level": "ERROR", "logger": "identity.api",'
                    ' "message": "dependency unavailable"}',
                    '03:11:53 identity-api.1      | {"level": "ERROR", "logger": "identity.api",'
                    ' "message": "dependency unavailable"}',
                    "03:11:54 gateway.1           | Traceback (most recent call last):",
                    '03:11:54 gateway.1           |   File "x.py", line 1',
                    "03:11:55 system              | [supervise] calculator-worker exited with status 1",
                    "03:11:56 receipts-api.1      | not json {",
                ]
            )
        )
    assert logged_errors(log_since(log, offset)) == {
        "identity-api.1 identity.api: dependency unavailable": 2,
        "gateway.1: Traceback (most recent call last):": 1,
    }
    assert logged_errors(log_since(log, 0))["accounts-worker.1 aiokafka: start-up"] == 1
    assert log_since(tmp_path / "missing.log", 0) == ""
