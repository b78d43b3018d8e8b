"""Runs every benchmark module in this folder (`make bench`): `bench_*.py`, each with a `main`-style CLI."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

if __name__ == "__main__":
    here = Path(__file__).parent
    failed = []
    for module in sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_")):
        print(f"\n== {module}", flush=True)
        done = subprocess.run([sys.executable, "-m", f"tests.benchmarks.{module}"], check=False)
        if done.returncode != 0:
            failed.append(module)
    if failed:
        sys.exit(f"benchmarks failed: {', '.join(failed)}")
