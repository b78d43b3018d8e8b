"""Settings of the receipts service: RECEIPTS_* variables plus the shared ones (SMTP_HOST, SMTP_PORT, ...)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from service_runtime.settings import ServiceSettings

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"


class ReceiptsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="RECEIPTS_", extra="ignore")

    service_name: str = "receipts"

    # E-bill delivery (the worker's sender loop).
    smtp_host: str = Field("127.0.0.1", validation_alias=AliasChoices("SMTP_HOST", "smtp_host"))
    smtp_port: int = Field(1025, validation_alias=AliasChoices("SMTP_PORT", "smtp_port"))
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_use_tls: bool = False  # implicit TLS (port 465)
    smtp_start_tls: bool | None = None  # None: STARTTLS when the server offers it
    smtp_timeout_s: float = 20.0
    mail_from: str = "АО «АлматыЭнергоСбыт» <e-bill@esb.kz>"
    ebill_poll_interval_s: float = 5.0
    ebill_batch_size: int = 20
    ebill_max_attempts: int = 8  # then the delivery is marked failed (and logged)
    ebill_backoff_base_s: float = 30.0  # 30 s, 1 min, 2 min, ... capped at ebill_backoff_max_s
    ebill_backoff_max_s: float = 3600.0
    ebill_lease_s: float = 300.0  # a claimed delivery is retried after this if its sender died
