"""The CLI without Kafka: seed and chaos to a file with the ledger beside it, the AsyncAPI document,
and the refusal of a window that has not ended."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from backoffice_simulator.cli import app
from backoffice_simulator.ledger import is_valid


def test_seed_to_a_file_with_its_ledger(tmp_path: Path) -> None:
    out, ledger = tmp_path / "messages.jsonl", tmp_path / "ledger.json"
    args = ["seed", "--accounts", "4", "--months", "3", "--seed", "8", "--start", "2025-01", "--demo"]
    result = CliRunner().invoke(app, [*args, "--out", str(out), "--ledger-out", str(ledger), "--quiet"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(is_valid(line["topic"], line["value"].encode()) for line in lines)
    document = json.loads(ledger.read_text())
    assert len(document["accounts"]) == 7 and document["scenario"]["seed"] == 8
    assert {"770100200301", "770100200302", "770100200303"} <= set(document["accounts"])
    again = tmp_path / "again.jsonl"
    CliRunner().invoke(app, [*args, "--out", str(again), "--quiet"])
    assert again.read_bytes() == out.read_bytes()


def test_chaos_to_a_file_counts_its_malformed_messages(tmp_path: Path) -> None:
    out, ledger = tmp_path / "chaos.jsonl", tmp_path / "ledger.json"
    result = CliRunner().invoke(
        app,
        ["chaos", "--duplicates", "0.3", "--disorder", "0.5", "--malformed", "0.2", "--accounts", "5",
         "--months", "3", "--start", "2025-01", "--out", str(out), "--ledger-out", str(ledger), "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(ledger.read_text())
    invalid: dict[str, int] = {}
    for line in out.read_text().splitlines():
        record = json.loads(line)
        if not is_valid(record["topic"], record["value"].encode()):
            invalid[record["topic"]] = invalid.get(record["topic"], 0) + 1
    assert invalid == document["chaos"]["malformed_per_topic"] == document["malformed"]


def test_asyncapi_and_an_unfinished_window(tmp_path: Path) -> None:
    path = tmp_path / "asyncapi.json"
    assert CliRunner().invoke(app, ["asyncapi", "--out", str(path)]).exit_code == 0
    assert json.loads(path.read_text())["asyncapi"] == "3.0.0"
    result = CliRunner().invoke(
        app, ["seed", "--start", "2099-01", "--months", "1", "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 2 and "2099-01" in result.output  # a usage error, naming the month
