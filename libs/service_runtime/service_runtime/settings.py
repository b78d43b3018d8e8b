"""Settings from the environment (pydantic-settings).

Shared infrastructure settings have fixed names (KAFKA_BOOTSTRAP_SERVERS, REDIS_URL, ...); a service's
own settings carry its prefix (LEDGER_DATABASE_URL, ...). `deploy/local/stack.sh` writes them all
into `.local/stack.env` for the local stack; Kubernetes sets them from ConfigMaps and Secrets.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _shared(name: str) -> Any:
    return AliasChoices(name)


class ServiceSettings(BaseSettings):
    """What every service process needs. Subclasses set `env_prefix` to their name, e.g. "LEDGER_"."""

    # populate_by_name: shared fields can be passed by name too (tests: ServiceSettings(redis_url=...)).
    model_config = SettingsConfigDict(extra="ignore", env_nested_delimiter="__", populate_by_name=True)

    service_name: str = "service"
    database_url: SecretStr = SecretStr("postgresql://localhost/postgres")
    database_pool_size: int = 10
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", validation_alias=_shared("KAFKA_BOOTSTRAP_SERVERS")
    )
    kafka_topic_partitions: dict[str, int] = Field(
        default_factory=dict, validation_alias=_shared("KAFKA_TOPIC_PARTITIONS")
    )
    redis_url: SecretStr = Field(SecretStr("redis://127.0.0.1:6379/0"), validation_alias=_shared("REDIS_URL"))
    # Connections to Redis at most, and how long a command waits for a free one when all are busy
    # (redis-py's default pool refuses the 101st concurrent command instead of waiting: 500s under a burst).
    redis_max_connections: int = Field(512, ge=1)
    redis_pool_timeout_s: float = Field(10.0, gt=0)
    # Identity's public keys, for verifying access tokens locally (service_runtime.auth).
    jwks_url: str = Field("http://127.0.0.1:8001/internal/v1/jwks.json", validation_alias=_shared("JWKS_URL"))
    log_level: str = Field("INFO", validation_alias=_shared("LOG_LEVEL"))
    # Projection consumers: how many records one PostgreSQL transaction applies.
    consumer_batch_size: int = 500
    relay_batch_size: int = 1000
    worker_metrics_port: int | None = None

    @field_validator("kafka_topic_partitions", mode="before")
    @classmethod
    def _parse_partitions(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value

    @property
    def dsn(self) -> str:
        return self.database_url.get_secret_value()
