"""Settings of the gateway: GATEWAY_* variables plus the shared ones. It owns no database.

Everything the gateway keeps lives in Redis under `redis_prefix` (view cache, rate limits, idempotent
replies, web sessions), so tests and several deployments sharing one Redis never collide.
"""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from service_runtime.settings import ServiceSettings


class ContactCenter(BaseModel):
    """«Контактные данные Контакт-центра»: static data shown in the right panel and GET /contact-center."""

    phone: str = "+7 (727) 356-99-99"
    email: str = "call-center@esb.kz"
    hours: str = "ежедневно с 8:00 до 20:00"
    address: str = "г. Алматы, ул. Толе би, 69"


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", extra="ignore", populate_by_name=True, env_nested_delimiter="__"
    )

    service_name: str = "gateway"
    identity_url: str = "http://127.0.0.1:8001"
    accounts_url: str = "http://127.0.0.1:8002"
    ledger_url: str = "http://127.0.0.1:8003"
    calculator_url: str = "http://127.0.0.1:8004"
    receipts_url: str = "http://127.0.0.1:8005"
    # Toward a service: per-attempt timeout, and how many attempts a safe (GET) call gets.
    upstream_timeout_s: float = 5.0
    # Identity hashes passwords (argon2id, memory-hard): logins and password changes take longer.
    identity_timeout_s: float = 15.0
    # PDFs are rendered on demand by the services: they get longer.
    upstream_document_timeout_s: float = 20.0
    upstream_attempts: int = Field(2, ge=1, le=5)
    upstream_max_connections: int = 200

    # --- Redis: every key starts with this -------------------------------------------------------------
    redis_prefix: str = Field("gw:", min_length=1, max_length=100)
    # Composed views (account list with balances, account info) live this long at most; events
    # invalidate them earlier.
    cache_ttl_s: int = Field(300, ge=1)
    # The set of accounts a user linked (the gateway's own 404 check before calling a service).
    links_ttl_s: int = Field(120, ge=1)
    # After an event, how long reads bypass the cache (the service's read model may still trail it).
    cache_hot_window_s: int = Field(10, ge=1)

    # --- cache invalidation consumer (in the gateway process) -----------------------------------------
    cache_consumer_enabled: bool = True
    cache_consumer_group: str = "gateway-cache-invalidation"

    # --- rate limits per client address (fixed windows in Redis) -------------------------------------
    login_max_failures: int = Field(30, ge=1)
    login_window_s: int = Field(15 * 60, ge=1)
    link_max_failures: int = Field(20, ge=1)
    link_window_s: int = Field(15 * 60, ge=1)
    # Registrations refused because the address is taken: the one answer that tells an address exists,
    # so probing many addresses from one client is cut off.
    register_max_conflicts: int = Field(10, ge=1)
    register_window_s: int = Field(15 * 60, ge=1)
    # How many proxies in front of the gateway append to X-Forwarded-For (0: use the socket peer).
    trusted_proxy_hops: int = Field(0, ge=0, le=5)

    # --- what the gateway accepts ------------------------------------------------------------------------
    # Request bodies above this are refused with 413 before anything reads them (the largest valid one,
    # a request's text of 4000 characters, is well under 20 KiB).
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=10 * 1024 * 1024)
    # /metrics and /readyz answer only requests that did not come through a proxy (Prometheus and the
    # kubelet call the pod directly; everything from the internet carries X-Forwarded-For). True: always.
    expose_operational_endpoints: bool = False

    # --- identity's revocations ------------------------------------------------------------------------
    # Identity's Redis prefix: a token whose session identity revoked is refused (401) at once, not only
    # when it expires (services/identity/README.md, "revoked-session").
    identity_redis_prefix: str = Field("identity:", min_length=1, max_length=100)

    # --- idempotent writes -----------------------------------------------------------------------------
    idempotency_ttl_s: int = Field(24 * 3600, ge=60)

    # --- the web portal --------------------------------------------------------------------------------
    public_base_url: str = "http://127.0.0.1:8000"
    # None: Secure cookies when public_base_url is https (a plain-http local run can't keep them).
    cookie_secure: bool | None = None
    session_cookie: str = "lk_session"
    language_cookie: str = "lk_lang"
    session_idle_ttl_s: int = Field(2 * 3600, ge=60)
    session_max_age_s: int = Field(12 * 3600, ge=60)
    # Sessions are stored in Redis under HMAC(secret_key, session id): a Redis dump yields no usable cookie.
    secret_key: SecretStr = Field(
        SecretStr("dev-only-not-secret"),
        validation_alias=AliasChoices("GATEWAY_SECRET_KEY", "PORTAL_SECRET_KEY", "secret_key"),
    )
    contact_center: ContactCenter = Field(default_factory=ContactCenter)

    @field_validator("public_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def secure_cookies(self) -> bool:
        if self.cookie_secure is not None:
            return self.cookie_secure
        return self.public_base_url.startswith("https://")

    @property
    def service_urls(self) -> dict[str, str]:
        return {
            "identity": self.identity_url,
            "accounts": self.accounts_url,
            "ledger": self.ledger_url,
            "calculator": self.calculator_url,
            "receipts": self.receipts_url,
        }
