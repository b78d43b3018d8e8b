"""Per-service migrations with Alembic, run at start (`migrate_to_head`) and from the CLI.

Each service has `migrations/` beside its package, with an `env.py` that calls `run_alembic_env()`.
Migrations are written as plain SQL through `op.execute`, so no ORM models are needed.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import psycopg
from alembic import command, context
from alembic.config import Config
from sqlalchemy import create_engine, exc, pool

log = logging.getLogger(__name__)


def sqlalchemy_url(dsn: str) -> str:
    """psycopg 3 as SQLAlchemy's driver."""
    for prefix in ("postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+psycopg://" + dsn[len(prefix) :]
    return dsn


def alembic_config(migrations_dir: Path, dsn: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    # Alembic's ini interpolation would choke on a '%' in a password.
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(dsn).replace("%", "%%"))
    return config


def migrate_to_head(migrations_dir: Path, dsn: str, *, wait_s: float = 120.0) -> None:
    """Upgrade to the newest revision. While PostgreSQL cannot be reached (a process starting during a
    database restart), retry with backoff for up to `wait_s` seconds instead of failing the process:
    the migration is one transaction, so a retry starts it over cleanly."""
    deadline = time.monotonic() + wait_s
    delay = 0.5
    while True:
        try:
            command.upgrade(alembic_config(migrations_dir, dsn), "head")
            return
        except (exc.OperationalError, psycopg.OperationalError) as error:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("database not reachable for migrations; retrying", extra={"error": repr(error)})
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def run_alembic_env() -> None:
    """The body of every service's `migrations/env.py`."""
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None, "sqlalchemy.url is set by alembic_config()"
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection)
        with context.begin_transaction():
            # Several replicas may start at once: one migrates, the others wait for it.
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7201)")
            context.run_migrations()
    engine.dispose()
