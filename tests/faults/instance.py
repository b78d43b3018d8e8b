"""A disposable, isolated stack for fault injection: `deploy/local/stack.sh` with LK_STACK_INSTANCE.

The shared stack (PostgreSQL :55432, Redis :6379, Kafka :9092, apps :8000-8005) is never touched: the
instance has its own state directory (`.local-<name>/`), every port shifted, its own passwords, and its
workers run in a restart loop, so that `kill -9` of a worker is a crash the loop recovers from, as a
Kubernetes pod restart would. Every command to stack.sh gets an environment scrubbed of the shared
stack's connection settings (a test run sources `.local/stack.env`), so nothing can leak across.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STACK = REPO / "deploy" / "local" / "stack.sh"
SERVICES = ("identity", "accounts", "ledger", "calculator", "receipts")
APP_BASE_PORTS = {"gateway": 8000, "identity": 8001, "accounts": 8002, "ledger": 8003, "calculator": 8004,
                  "receipts": 8005}  # fmt: skip
# Variables of the shared stack's env file (and the apps' own) that must not reach an instance.
_SCRUB_PREFIXES = ("KAFKA_", "REDIS_", "SMTP_", "PG_", "JWT_", "PORTAL_", "LOG_DIR", "JWKS_", "GATEWAY_",
                   "IDENTITY_", "ACCOUNTS_", "LEDGER_", "CALCULATOR_", "RECEIPTS_", "LK_STACK_")  # fmt: skip


def parse_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


@dataclass
class Instance:
    name: str = "faults"
    port_offset: int = 100
    log: list[str] = field(default_factory=list)

    @property
    def state_dir(self) -> Path:
        return REPO / f".local-{self.name}"

    @property
    def env_file(self) -> Path:
        return self.state_dir / "stack.env"

    def port(self, app: str) -> int:
        return APP_BASE_PORTS[app] + self.port_offset

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.port('gateway')}"

    def service_urls(self) -> dict[str, str]:
        return {s: f"http://127.0.0.1:{self.port(s)}" for s in SERVICES}

    def base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES)}
        env["LK_STACK_INSTANCE"] = self.name
        env["LK_STACK_PORT_OFFSET"] = str(self.port_offset)
        return env

    def env(self) -> dict[str, str]:
        """The instance's connection settings (KAFKA_BOOTSTRAP_SERVERS, PG_ADMIN_URL, ...)."""
        return parse_env_file(self.env_file)

    def stack(self, *args: str, timeout: float = 600, extra_env: dict[str, str] | None = None) -> None:
        env = self.base_env() | (extra_env or {})
        started = time.monotonic()
        result = subprocess.run(
            [str(STACK), *args],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        self.log.append(
            f"stack.sh {' '.join(args)}: rc={result.returncode} in {time.monotonic() - started:.1f}s"
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"LK_STACK_INSTANCE={self.name} stack.sh {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )

    # --- lifecycle --------------------------------------------------------------------------------
    def up(self) -> None:
        """A fresh instance: wipe whatever an earlier run left, start the infrastructure and the apps."""
        self.stack("reset")
        self.stack("start")
        self.stack("services-start")

    def down(self, *, wipe: bool = True) -> None:
        self.stack("stop")
        if wipe:
            self.stack("reset")

    # --- faults -----------------------------------------------------------------------------------
    def worker_pids(self, service: str) -> list[int]:
        """The Python processes of `<service>.worker` under this instance's honcho (never another's)."""
        root = _read_pid(self.state_dir / "run" / "honcho.pid")
        if root is None:
            return []
        pattern = re.compile(rf"(^|\s)-m {re.escape(service)}\.worker(\s|$)")
        pids = []
        for pid in _descendants(root):
            cmd = _cmdline(pid)
            if "python" in cmd.split(" ", 1)[0] and pattern.search(cmd):
                pids.append(pid)
        return pids

    def kill_worker(self, service: str) -> list[int]:
        pids = self.worker_pids(service)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return pids

    def supervisor_restarts(self) -> dict[str, int]:
        """How often each worker's restart loop restarted it (from the services' log)."""
        counts: dict[str, int] = {}
        log = self.state_dir / "logs" / "services.log"
        if log.exists():
            for match in re.finditer(
                r"\[supervise\] (\S+) exited with status (\d+)", log.read_text(errors="replace")
            ):
                counts[match.group(1)] = counts.get(match.group(1), 0) + 1
        return counts

    def exit_statuses(self) -> list[tuple[str, int]]:
        log = self.state_dir / "logs" / "services.log"
        if not log.exists():
            return []
        return [
            (m.group(1), int(m.group(2)))
            for m in re.finditer(
                r"\[supervise\] (\S+) exited with status (\d+)", log.read_text(errors="replace")
            )
        ]

    def honcho_alive(self) -> bool:
        pid = _read_pid(self.state_dir / "run" / "honcho.pid")
        return pid is not None and Path(f"/proc/{pid}").exists()


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may contain spaces and parentheses.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _descendants(root: int) -> list[int]:
    tree = _children()
    found: list[int] = []
    stack = [root]
    while stack:
        pid = stack.pop()
        for child in tree.get(pid, []):
            found.append(child)
            stack.append(child)
    return found
