"""Settings of the gateway: GATEWAY_* variables plus the shared ones. It owns no database."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from service_runtime.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    service_name: str = "gateway"
    identity_url: str = "http://127.0.0.1:8001"
    accounts_url: str = "http://127.0.0.1:8002"
    ledger_url: str = "http://127.0.0.1:8003"
    calculator_url: str = "http://127.0.0.1:8004"
    receipts_url: str = "http://127.0.0.1:8005"
    # Toward a service: per-attempt timeout, and how many attempts a safe (GET) call gets.
    upstream_timeout_s: float = 2.0
    upstream_attempts: int = 2
