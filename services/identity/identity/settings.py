"""Settings of the identity service: IDENTITY_* variables plus the shared ones.

Shared names (no prefix): JWT_PRIVATE_KEY_FILE, SMTP_HOST, SMTP_PORT, REDIS_URL, KAFKA_BOOTSTRAP_SERVERS.
Every field can also be passed by its name to the constructor (tests do).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from service_runtime.settings import ServiceSettings

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"


class IdentitySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="IDENTITY_", extra="ignore", populate_by_name=True)

    service_name: str = "identity"

    # --- access tokens (EdDSA JWT) ------------------------------------------------------------------
    # The Ed25519 private key (PEM, PKCS#8) that signs access tokens; its public half is the current JWKS key.
    jwt_private_key_file: Path | None = Field(
        None, validation_alias=AliasChoices("JWT_PRIVATE_KEY_FILE", "jwt_private_key_file")
    )
    # Tests and throwaway runs only: without a key file, sign with a key generated at start.
    jwt_ephemeral_key: bool = False
    # Key rotation: the public keys (PEM files, public or private) of keys that signed tokens recently.
    # They stay in the JWKS, so tokens they signed verify until they expire. Comma-separated or JSON list.
    jwt_previous_public_key_files: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    access_token_ttl_s: int = Field(300, ge=30, le=3600)

    # --- sessions and refresh tokens (Redis) -------------------------------------------------------
    # Every identity key in Redis starts with this, so tests (and several deployments) don't collide.
    redis_prefix: str = Field("identity:", min_length=1, max_length=100)
    # A burst of sign-ins waits for a Redis connection at most this long (below the gateway's timeout).
    redis_pool_timeout_s: float = Field(5.0, gt=0)
    # A session (refresh-token family) ends after this long without a refresh...
    refresh_token_ttl_s: int = Field(30 * 24 * 3600, ge=60)
    # ...and in any case this long after the login.
    session_max_age_s: int = Field(90 * 24 * 3600, ge=60)

    # --- brute-force protection --------------------------------------------------------------------
    login_failure_window_s: int = Field(15 * 60, ge=1)
    login_max_failures_per_email: int = Field(5, ge=1)
    login_max_failures_per_client: int = Field(20, ge=1)
    # At most this many reset e-mails per address per window (more requests still answer 202).
    password_reset_max_per_window: int = Field(3, ge=1)
    # POST /password-reset answers no sooner than this, known address or not (timing equalization).
    password_reset_min_response_s: float = Field(0.05, ge=0)

    # --- passwords (argon2id) ----------------------------------------------------------------------
    # OWASP Password Storage Cheat Sheet: argon2id, m = 19 MiB, t = 2, p = 1 (README, "Passwords").
    # Stored hashes with other parameters are rehashed at the next successful sign-in.
    argon2_time_cost: int = Field(2, ge=1)
    argon2_memory_cost_kib: int = Field(19 * 1024, ge=7 * 1024)
    argon2_parallelism: int = Field(1, ge=1)
    # Hashes computed at once (None: the CPUs this process may use), and how long a request waits for a
    # slot before 503 + Retry-After. Keep the wait below the gateway's identity timeout (15 s), so that
    # identity answers before the gateway gives up; below it, a burst of sign-ins is latency, not errors.
    argon2_concurrency: int | None = Field(None, ge=1)
    argon2_queue_wait_s: float = Field(10.0, gt=0)

    # --- links and e-mail --------------------------------------------------------------------------
    portal_base_url: str = "http://127.0.0.1:8000"
    password_reset_ttl_s: int = Field(30 * 60, ge=60)
    email_change_ttl_s: int = Field(24 * 3600, ge=60)
    smtp_host: str = Field("127.0.0.1", validation_alias=AliasChoices("SMTP_HOST", "smtp_host"))
    smtp_port: int = Field(1025, validation_alias=AliasChoices("SMTP_PORT", "smtp_port"))
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_use_tls: bool = False  # implicit TLS (port 465)
    smtp_start_tls: bool | None = None  # None: STARTTLS when the server offers it
    smtp_timeout_s: float = 10.0
    mail_from: str = "Личный кабинет АлматыЭнергоСбыт <no-reply@lk.almatyenergosbyt.kz>"
    # The worker's mail sender: how often it looks for due mail (it is also woken by NOTIFY).
    mail_poll_interval_s: float = Field(5.0, gt=0)
    # Immediate retries of one message inside one pass (tenacity), then a backoff between passes.
    mail_send_attempts_per_pass: int = Field(3, ge=1)
    mail_retry_base_s: float = Field(30.0, gt=0)
    mail_retry_max_s: float = Field(3600.0, gt=0)
    mail_max_attempts: int = Field(12, ge=1)  # passes; after that the message is marked failed
    mail_batch_size: int = Field(20, ge=1)

    @field_validator("jwt_previous_public_key_files", mode="before")
    @classmethod
    def _split_paths(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("jwt_private_key_file", "jwt_previous_public_key_files")
    @classmethod
    def _files_exist(cls, value: Any) -> Any:
        paths = value if isinstance(value, list) else [value]
        for path in paths:
            if path is not None and not Path(path).is_file():
                raise ValueError(f"key file {path} does not exist")
        return value

    @field_validator("portal_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("portal_base_url must be an http(s) URL")
        return value.rstrip("/")
