"""One fault campaign from start to end: an isolated stack up, traffic and faults, the audit, a report.

    uv run python -m tests.faults [--size small|full] [--seed N] [--keep] [--strict]

`make faults` runs the full size; `tests/faults/test_faults_small.py` runs the small one in `make test`.
The report is printed and written to artifacts/faults-<size>-<seed>.json. Exit status 1 when the audit
found a problem.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import time
from collections import Counter
from typing import Any

from tests.faults.audit import Findings, audit, audit_api
from tests.faults.campaign import SIZES, Campaign, say
from tests.faults.instance import REPO, Instance


def report(campaign: Campaign, findings: Findings, instance: Instance) -> dict[str, Any]:
    publish = campaign.publish
    statuses = instance.exit_statuses()
    killed = Counter(
        f.target for f in campaign.faults if f.kind == "kill-worker" and f.detail.startswith("SIGKILL")
    )
    unexpected_exits = [(name, status) for name, status in statuses if status != 137]
    return {
        "size": campaign.size.name,
        "seed": campaign.seed,
        "prefixes": {"twin": campaign.prefixes()[0], "chaotic": campaign.prefixes()[1]},
        "events": {
            "published": publish.sent if publish else 0,
            "re_sent_after_broker_outages": publish.resent if publish else 0,
            "by_kind": dict(publish.per_kind) if publish else {},
            "valid_distinct": campaign.twin_ledger.records
            - sum(campaign.twin_ledger.malformed.values())
            - sum(campaign.twin_ledger.duplicates.values())
            + campaign.chaos_ledger.records
            - sum(campaign.chaos_ledger.malformed.values())
            - sum(campaign.chaos_ledger.duplicates.values()),
            "live_feed": {"readings": campaign.live_readings, "payments": campaign.live_payments},
            "chaos": campaign.chaos_report,
        },
        "faults": [
            {"at_s": f.at_s, "kind": f.kind, "target": f.target, "detail": f.detail, "took_s": f.took_s}
            for f in campaign.faults
        ],
        "faults_by_kind": dict(Counter(f.kind for f in campaign.faults)),
        "workers_killed": dict(killed),
        "worker_restarts": instance.supervisor_restarts(),
        "unexpected_worker_exits": unexpected_exits,
        "gateway_probes_during_faults": dict(campaign.probes),
        "timings_s": campaign.timings,
        "losses": findings.counts.get("losses", 0),
        "duplicates": findings.counts.get("duplicates", 0),
        "counts": findings.counts,
        "notes": findings.notes,
        "problems": findings.problems,
    }


def print_report(data: dict[str, Any]) -> None:
    ev = data["events"]
    lines = [
        f"fault campaign {data['size']} (seed {data['seed']})",
        f"  published {ev['published']} messages ({ev['by_kind']}), {ev['valid_distinct']} distinct valid events;"
        f" {ev['re_sent_after_broker_outages']} re-sent after broker outages",
        f"  chaos: {ev['chaos'].get('duplicates')} duplicates, {ev['chaos'].get('payment_resends')} payment re-sends,"
        f" {ev['chaos'].get('displaced')} displaced, malformed {ev['chaos'].get('malformed_per_topic')}",
        f"  faults: {data['faults_by_kind']}; workers killed {data['workers_killed']};"
        f" restarts {data['worker_restarts']}; unexpected exits {data['unexpected_worker_exits']}",
        f"  gateway probes during the faults: {data['gateway_probes_during_faults']}",
        f"  timings: {data['timings_s']}",
        f"  losses: {data['losses']}, duplicates: {data['duplicates']}",
    ]
    for key, value in data["counts"].items():
        if key not in ("losses", "duplicates"):
            lines.append(f"  {key}: {value}")
    for note in data["notes"]:
        lines.append(f"  note: {note}")
    lines.append(f"  problems: {len(data['problems'])}")
    lines += [f"   - {p[:700]}" for p in data["problems"][:80]]
    print("\n".join(lines), flush=True)


async def run_campaign(size: str, seed: int, *, keep: bool = False, strict: bool = False) -> dict[str, Any]:
    # The clients' own retries while a broker is down are expected here: keep their warnings out of the report.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    # Another name and offset let two campaigns run side by side (each wipes its own instance first).
    instance = Instance(
        name=os.environ.get("FAULTS_INSTANCE", "faults"),
        port_offset=int(os.environ.get("FAULTS_PORT_OFFSET", "100")),
    )
    started = time.monotonic()
    say(
        f"starting the isolated stack '{instance.name}' (state {instance.state_dir}, ports +{instance.port_offset})"
    )
    await asyncio.to_thread(instance.up)
    try:
        campaign = Campaign(SIZES[size], seed, instance)
        campaign.timings["stack_up_s"] = round(time.monotonic() - started, 1)
        await campaign.run()
        say("auditing the stores and the dead letters")
        findings = await audit(campaign, strict=strict)
        say("auditing through the public API")
        await audit_api(campaign, findings)
        campaign.timings["total_s"] = round(time.monotonic() - started, 1)
        data = report(campaign, findings, instance)
        for name, status in data["unexpected_worker_exits"]:
            data["notes"].append(
                f"{name} exited by itself with status {status} (its restart loop started it again; under the"
                " default Procfile honcho would have stopped every app): see the services log in artifacts/"
            )
    finally:
        logs = REPO / "artifacts" / f"faults-{size}-{seed}-logs"
        shutil.rmtree(logs, ignore_errors=True)
        shutil.copytree(instance.state_dir / "logs", logs, dirs_exist_ok=True)
        if not keep:
            say("tearing the isolated stack down")
            await asyncio.to_thread(instance.down)
    out = REPO / "artifacts" / f"faults-{size}-{seed}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
    print_report(data)
    say(f"report written to {out.relative_to(REPO)}")
    return data


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("FAULTS_SEED", "20261126")))
    parser.add_argument("--keep", action="store_true", help="leave the isolated stack running afterwards")
    parser.add_argument("--strict", action="store_true", default=os.environ.get("FAULTS_STRICT") == "1",
                        help="valid messages refused by a service rule fail the run too")  # fmt: skip
    args = parser.parse_args()
    data = asyncio.run(run_campaign(args.size, args.seed, keep=args.keep, strict=args.strict))
    raise SystemExit(1 if data["problems"] else 0)


if __name__ == "__main__":
    main()
