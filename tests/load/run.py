"""The load test: locust (a second process, headless, loopback only) against the gateway, in rising steps.

    uv run python -m tests.load [--steps 5:45,10:45,20:45,40:45,60:45] [--burst 200] [--users N] [--keep]

By default it starts its own isolated stack (LK_STACK_INSTANCE=load: ports +200, state .local-load/),
seeds customers (tests/load/seed.py), runs tests/load/locustfile.py, then fires a burst of `--burst`
simultaneous sign-ins (argon2id: the dearest request there is) at the gateway, prints a table of
latency percentiles and errors per step, the burst's, and the ERROR lines the stack's processes logged
meanwhile (errors a client may never see), writes it all to artifacts/load-<time>.md and .json, and
tears the stack down. `--gateway URL --bootstrap HOST:PORT` targets a running stack instead (loopback
only; no burst unless asked, no logs to read).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.faults.instance import REPO, Instance
from tests.load.seed import seed_users

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    # Nearest rank: the smallest value with at least q % of the values at or below it. (round(x + 0.5)
    # rounded half to even: every other p50/p95 was one rank high, and a p99 of 100 values was the max.)
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


def summarize(raw: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for step in raw["steps"]:
        samples = step["samples"]
        times = [s[1] for s in samples]
        errors = [s for s in samples if s[2]]
        browsing = [s[1] for s in samples if "login" not in s[0]]  # without the argon2id sign-ins
        per_name: dict[str, list[float]] = defaultdict(list)
        for name, ms, _, _ in samples:
            per_name[name].append(ms)
        rows.append(
            {
                "step": step["step"],
                "users": step["users"],
                "seconds": step["seconds"],
                "requests": len(samples),
                "rps": round(len(samples) / step["seconds"], 1) if step["seconds"] else 0.0,
                "p50_ms": round(percentile(times, 50), 1),
                "p95_ms": round(percentile(times, 95), 1),
                "p99_ms": round(percentile(times, 99), 1),
                "max_ms": round(max(times), 1) if times else 0.0,
                "errors": len(errors),
                "without_sign_ins": {
                    "p50_ms": round(percentile(browsing, 50), 1),
                    "p95_ms": round(percentile(browsing, 95), 1),
                    "p99_ms": round(percentile(browsing, 99), 1),
                },
                "error_kinds": dict(Counter(f"{s[0]}: {s[3][:160]}" for s in errors).most_common(10)),
                "per_request": {
                    name: {
                        "n": len(v),
                        "p50_ms": round(percentile(v, 50), 1),
                        "p95_ms": round(percentile(v, 95), 1),
                        "p99_ms": round(percentile(v, 99), 1),
                    }
                    for name, v in sorted(per_name.items())
                },
            }
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| step | users | seconds | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | errors"
        " | without sign-ins: p50 / p95 / p99 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        b = r["without_sign_ins"]
        lines.append(
            f"| {r['step']} | {r['users']} | {r['seconds']:.0f} | {r['requests']} | {r['rps']} | {r['p50_ms']} |"
            f" {r['p95_ms']} | {r['p99_ms']} | {r['max_ms']} | {r['errors']} |"
            f" {b['p50_ms']} / {b['p95_ms']} / {b['p99_ms']} |"
        )
    return "\n".join(lines)


def per_request_table(rows: list[dict[str, Any]]) -> str:
    last = rows[-1]
    lines = [f"Per request at step {last['step']} ({last['users']} users):", "",
             "| request | n | p50 ms | p95 ms | p99 ms |", "|---|---:|---:|---:|---:|"]  # fmt: skip
    for name, s in last["per_request"].items():
        lines.append(f"| {name} | {s['n']} | {s['p50_ms']} | {s['p95_ms']} | {s['p99_ms']} |")
    return "\n".join(lines)


async def sign_in_burst(gateway: str, customers: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """`n` API sign-ins released at the same instant (customers reused round-robin): every one must be
    200 — beyond capacity a sign-in waits for a hashing slot, it does not fail."""
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    go = asyncio.Event()
    async with httpx.AsyncClient(base_url=gateway, timeout=60.0, limits=limits) as client:

        async def one(index: int) -> tuple[float, str]:
            me = customers[index % len(customers)]
            await go.wait()
            started = time.perf_counter()
            try:
                r = await client.post(
                    "/api/v1/auth/login", json={"email": me["email"], "password": me["password"]}
                )
                error = "" if r.status_code == 200 else f"{r.status_code} {r.text[:160]}"
            except httpx.HTTPError as exc:
                error = repr(exc)[:160]
            return (time.perf_counter() - started) * 1000, error

        tasks = [asyncio.create_task(one(i)) for i in range(n)]
        await asyncio.sleep(0.1)
        started = time.perf_counter()
        go.set()
        outcomes = await asyncio.gather(*tasks)
        seconds = time.perf_counter() - started
    times = [ms for ms, _ in outcomes]
    errors = [e for _, e in outcomes if e]
    return {
        "sign_ins": n,
        "seconds": round(seconds, 1),
        "per_second": round(n / seconds, 1) if seconds else 0.0,
        "p50_ms": round(percentile(times, 50), 1),
        "p95_ms": round(percentile(times, 95), 1),
        "p99_ms": round(percentile(times, 99), 1),
        "max_ms": round(max(times), 1) if times else 0.0,
        "errors": len(errors),
        "error_kinds": dict(Counter(errors).most_common(10)),
    }


def log_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def log_since(path: Path, offset: int) -> str:
    """The text appended to `path` after byte `offset` (the stack's start-up noise left out)."""
    if not path.exists():
        return ""
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read().decode(errors="replace")


def logged_errors(log_text: str) -> dict[str, int]:
    """ERROR/CRITICAL lines and tracebacks in the stack's honcho log, by process, logger and message."""
    found: Counter[str] = Counter()
    for line in log_text.splitlines():
        proc, _, rest = line.partition(" | ")
        proc = proc.split()[-1] if proc.split() else "?"
        rest = rest.strip()
        if rest.startswith("{"):
            try:
                record = json.loads(rest)
            except ValueError:
                continue
            if record.get("level") in ("ERROR", "CRITICAL"):
                found[f"{proc} {record.get('logger')}: {str(record.get('message'))[:120]}"] += 1
        elif rest.startswith("Traceback") or " ERROR " in f" {rest} ":
            found[f"{proc}: {rest[:120]}"] += 1
    return dict(found.most_common(20))


def run_locust(host: str, users_file: Path, steps: list[tuple[int, float]], results: Path) -> None:
    hostname = urlsplit(host).hostname or ""
    if not (hostname == "localhost" or hostname.startswith("127.")):
        raise SystemExit(f"the load test only targets loopback addresses, not {hostname!r}")
    env = dict(os.environ)
    env.update({
        "LOAD_USERS_FILE": str(users_file),
        "LOAD_STEPS": json.dumps([[u, s] for u, s in steps]),
        "LOAD_RESULTS": str(results),
    })  # fmt: skip
    total = sum(s for _, s in steps)
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", host,
           "--only-summary", "--stop-timeout", "10", "--loglevel", "WARNING"]  # fmt: skip
    subprocess.run(cmd, env=env, cwd=REPO, check=False, timeout=total + 180)
    if not results.exists():
        raise RuntimeError("locust wrote no results")


async def run_load(
    steps: list[tuple[int, float]],
    *,
    gateway: str | None = None,
    bootstrap: str | None = None,
    users: int | None = None,
    keep: bool = False,
    label: str = "load",
    burst: int = 0,
) -> dict[str, Any]:
    instance: Instance | None = None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = REPO / "artifacts"
    out_dir.mkdir(parents=True, exist_ok=True)
    users_file = out_dir / f"{label}-{stamp}-users.json"
    results = out_dir / f"{label}-{stamp}-raw.json"
    needed = users or max(u for u, _ in steps)
    services: dict[str, str] | None = None
    if gateway is None:
        instance = Instance(name="load", port_offset=200)
        print(
            f"[load] starting the isolated stack 'load' (ports +200, state {instance.state_dir})", flush=True
        )
        t0 = time.monotonic()
        await asyncio.to_thread(instance.up)
        print(f"[load] stack up in {time.monotonic() - t0:.0f}s", flush=True)
        gateway = instance.gateway_url
        bootstrap = instance.env()["KAFKA_BOOTSTRAP_SERVERS"]
        services = instance.service_urls()
    assert bootstrap is not None
    try:
        print(f"[load] seeding {needed} customers with linked accounts", flush=True)
        t0 = time.monotonic()
        customers = await seed_users(gateway, bootstrap, users=needed, out=users_file, services=services)
        print(f"[load] seeded in {time.monotonic() - t0:.0f}s; locust: {steps}", flush=True)
        services_log = instance.state_dir / "logs" / "services.log" if instance else None
        offset = log_size(services_log) if services_log else 0  # what the stack logged from here on
        await asyncio.to_thread(run_locust, gateway, users_file, steps, results)
        burst_result = None
        if burst:
            print(f"[load] a burst of {burst} simultaneous sign-ins", flush=True)
            burst_result = await sign_in_burst(gateway, customers, burst)
        server_errors: dict[str, int] = {}
        if services_log is not None:
            logged = log_since(services_log, offset)
            server_errors = logged_errors(logged)
            if server_errors:  # keep the evidence: the stack's state is wiped below
                (out_dir / f"{label}-{stamp}-services.log").write_text(logged)
    finally:
        if instance is not None and not keep:
            await asyncio.to_thread(instance.down)
    rows = summarize(json.loads(results.read_text()))
    results.unlink()
    users_file.unlink()
    report = {
        "when": stamp,
        "gateway": gateway,
        "steps": rows,
        "burst": burst_result,
        "server_errors_logged": server_errors,
    }
    (out_dir / f"{label}-{stamp}.json").write_text(json.dumps(report, ensure_ascii=False, indent=2))
    text = f"Load test {stamp} against {gateway}\n\n{table(rows)}\n\n{per_request_table(rows)}\n"
    for r in rows:
        if r["errors"]:
            text += f"\nErrors at step {r['step']}: {json.dumps(r['error_kinds'], ensure_ascii=False)}\n"
    if burst_result is not None:
        b = burst_result
        text += (
            f"\nSign-in burst: {b['sign_ins']} simultaneous POST /api/v1/auth/login, done in {b['seconds']} s"
            f" ({b['per_second']}/s): p50 {b['p50_ms']} / p95 {b['p95_ms']} / p99 {b['p99_ms']} /"
            f" max {b['max_ms']} ms, errors {b['errors']}"
        )
        text += f" {json.dumps(b['error_kinds'], ensure_ascii=False)}\n" if b["errors"] else "\n"
    if instance is not None:
        text += (
            f"\nERROR lines the stack logged during the steps and the burst: {sum(server_errors.values())}"
        )
        text += f" (the log: artifacts/{label}-{stamp}-services.log)\n" if server_errors else "\n"
        text += "".join(f"- {n} × {what}\n" for what, n in server_errors.items())
    (out_dir / f"{label}-{stamp}.md").write_text(text)
    print(text, flush=True)
    print(f"[load] written to artifacts/{label}-{stamp}.md and .json", flush=True)
    return report


def _steps(text: str) -> list[tuple[int, float]]:
    return [(int(u), float(s)) for u, s in (part.split(":") for part in text.split(","))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", default=os.environ.get("LOAD_STEPS", "5:45,10:45,20:45,40:45,60:45"),
                        help="users:seconds,... (rising)")  # fmt: skip
    parser.add_argument("--burst", type=int, default=int(os.environ.get("LOAD_BURST", "100")),
                        help="simultaneous sign-ins after the steps (0: none)")  # fmt: skip
    parser.add_argument("--users", type=int, help="customers to seed (default: the last step's users)")
    parser.add_argument("--gateway", help="a running gateway (loopback) instead of an isolated stack")
    parser.add_argument("--bootstrap", help="its Kafka (with --gateway)")
    parser.add_argument("--keep", action="store_true", help="leave the isolated stack running")
    args = parser.parse_args()
    report = asyncio.run(run_load(_steps(args.steps), gateway=args.gateway, bootstrap=args.bootstrap,
                                  users=args.users, keep=args.keep, burst=args.burst))  # fmt: skip
    failed = any(r["errors"] for r in report["steps"]) or (report["burst"] or {}).get("errors")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
