"""Settings of the ledger service: LEDGER_* variables plus the shared ones."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import SettingsConfigDict

from service_runtime.settings import ServiceSettings

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"


class LedgerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGER_", extra="ignore")

    service_name: str = "ledger"
