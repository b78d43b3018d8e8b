"""Alembic environment of this service: see service_runtime.migrations."""

from service_runtime.migrations import run_alembic_env

run_alembic_env()
