"""Settings of the calculator service: CALCULATOR_* variables plus the shared ones."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pydantic_settings import SettingsConfigDict

from service_runtime.settings import ServiceSettings

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"


class CalculatorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CALCULATOR_", extra="ignore")

    service_name: str = "calculator"
    # The faust app id of the rating stream (its Kafka consumer group).
    rating_app_id: str = "calculator-rating"
    # Where faust keeps its app directory (`<dir>/<app id>-data`; empty with our in-memory store).
    # Relative paths are from the working directory (the repo root under deploy/local).
    faust_data_dir: Path = Path(".local/faust")
    # The monthly billing run: accounts per transaction, and a progress log line every N accounts.
    billing_batch_size: int = 500
    # Batches billed at once by one worker (each its own transaction): Python overlaps PostgreSQL.
    billing_concurrency: int = 2
    billing_progress_every: int = 1000
    # Back-office readings and period closings that occurred before this instant are history that
    # another deployment already handled: they are acknowledged and skipped, not replayed (a fresh
    # instance on long-lived topics would otherwise re-run every past billing run). Tariffs always apply.
    ingress_since: dt.datetime | None = None
