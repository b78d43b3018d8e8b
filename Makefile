# Entry points. The local stack lives in deploy/local/ (see deploy/local/stack.sh), its state in .local/.
SHELL := /bin/bash
STACK := deploy/local/stack.sh

.PHONY: help up down status stack reset test lint format bench faults load

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

up: ## install what is missing, start the stack and the services, print the portal URL
	$(STACK) up

down: ## stop the services and the stack
	$(STACK) services-stop
	$(STACK) stop

status: ## one line per component
	@$(STACK) status

stack: ## infrastructure only (PostgreSQL, Redis, Kafka, SMTP sink): install + start
	$(STACK) install
	$(STACK) start

reset: ## stop everything and wipe the stack's data
	$(STACK) reset

test: ## every check and test (starts the infrastructure if needed)
	scripts/test.sh

lint: ## ruff + mypy
	uv run ruff check .
	uv run ruff format --check .
	uv run mypy
	uv run mypy deploy/local/smtp_sink.py

format: ## apply ruff's fixes and formatting
	uv run ruff check --fix .
	uv run ruff format .

bench: ## benchmarks (not part of the test run); needs the stack
	$(STACK) start
	set -a && source "$$($(STACK) env)" && set +a && uv run python -m tests.benchmarks

faults: ## fault injection, full size, on its own isolated stack (docs/reliability.md)
	uv run python -m tests.faults --size full

load: ## load test (locust) in rising steps on its own isolated stack (docs/reliability.md)
	uv run python -m tests.load
