"""Settings of the calculator service: CALCULATOR_* variables plus the shared ones."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import SettingsConfigDict

from service_runtime.settings import ServiceSettings

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"


class CalculatorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CALCULATOR_", extra="ignore")

    service_name: str = "calculator"
