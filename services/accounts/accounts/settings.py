"""Settings of the accounts service: ACCOUNTS_* variables plus the shared ones."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from service_runtime.settings import ServiceSettings

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"


class AccountsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ACCOUNTS_", extra="ignore")

    service_name: str = "accounts"
    # Linking with a proof of ownership: failed attempts allowed per user and per account number
    # within the window, before attempts are refused with 429 until the window ends.
    link_max_failures: int = Field(5, ge=1)
    link_failure_window_s: int = Field(15 * 60, ge=1)
