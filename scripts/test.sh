#!/usr/bin/env bash
# Every check and test: the one command CI runs (via `make test`). Starts the local infrastructure if needed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

deploy/local/stack.sh start
set -a
# shellcheck source=/dev/null
source "$(deploy/local/stack.sh env)"
set +a

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "ruff check";  uv run ruff check .
step "ruff format"; uv run ruff format --check .
step "mypy";        uv run mypy && uv run mypy deploy/local/smtp_sink.py   # packages: [tool.mypy] in pyproject.toml
step "pytest";      uv run pytest -q -x -p no:cacheprovider --ignore=tests/benchmarks libs services gateway tests
