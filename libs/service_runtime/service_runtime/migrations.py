"""Per-service migrations with Alembic, run at start (`migrate_to_head`) and from the CLI.

Each service has `migrations/` beside its package, with an `env.py` that calls `run_alembic_env()`.
Migrations are written as plain SQL through `op.execute`, so no ORM models are needed.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import create_engine, pool


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


def migrate_to_head(migrations_dir: Path, dsn: str) -> None:
    command.upgrade(alembic_config(migrations_dir, dsn), "head")


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
