"""Identity on the real stack: its API in-process, its relay and mail sender as tasks, a fresh database,
a fresh signing key (plus a "previous" one for rotation), and Redis keys under a unique prefix."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from redis.asyncio import Redis

from deploy.local.smtp_sink import read_messages
from identity.adapters.keys import private_key_pem
from identity.adapters.mail_sender import MailSender
from identity.api import create_app
from identity.settings import MIGRATIONS_DIR, IdentitySettings
from identity.worker import handlers
from tests.support.harness import ServiceHarness
from tests.support.stack import eventually

PASSWORD = "Верный-пароль-2025"


@dataclass
class Identity:
    harness: ServiceHarness
    settings: IdentitySettings
    key: Ed25519PrivateKey
    previous_key: Ed25519PrivateKey
    redis: Redis
    sink_dir: str

    @property
    def client(self) -> httpx.AsyncClient:
        return self.harness.client

    async def register(
        self,
        email: str,
        password: str = PASSWORD,
        full_name: str = "Иванов Иван Иванович",
        language: str = "ru",
    ) -> str:
        r = await self.client.post(
            "/internal/v1/auth/register",
            json={"email": email, "password": password, "full_name": full_name},
            headers={"Accept-Language": language},
        )
        assert r.status_code == 201, r.text
        return str(r.json()["user_id"])

    async def login(self, email: str, password: str = PASSWORD, client: str | None = None) -> dict[str, Any]:
        r = await self.client.post(
            "/internal/v1/auth/login",
            json={"email": email, "password": password},
            headers={"X-Forwarded-For": client or random_ip()},
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def mail_to(
        self, address: str, predicate: Callable[[EmailMessage], bool] = lambda m: True, count: int = 1
    ) -> list[EmailMessage]:
        """Waits until `count` messages to `address` (matching `predicate`) reached the SMTP sink."""
        found: list[EmailMessage] = []

        async def arrived() -> bool:
            nonlocal found
            messages = await asyncio.to_thread(read_messages, self.sink_dir)
            found = [
                m for m in messages if address.lower() in str(m.get("X-RcptTo", "")).lower() and predicate(m)
            ]
            return len(found) >= count

        await eventually(arrived, timeout_s=30, every_s=0.3)
        return found


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def new_email(tag: str = "user") -> str:
    return f"{tag}-{uuid.uuid4().hex[:12]}@example.kz"


def random_ip() -> str:
    n = uuid.uuid4().int
    return f"10.{n % 250 + 1}.{(n >> 8) % 250 + 1}.{(n >> 16) % 250 + 1}"


def text_of(message: EmailMessage) -> str:
    """The plain-text part."""
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def raw_of(message: EmailMessage) -> str:
    """Every decoded part and header, to search for things that must never be in a mail."""
    parts = [str(v) for _, v in message.items()]
    for part in message.walk():
        if not part.is_multipart():
            parts.append(str(part.get_content()))  # type: ignore[attr-defined]
    return "\n".join(parts)


def write_key(directory: Path, name: str, key: Ed25519PrivateKey) -> Path:
    path = directory / name
    path.write_bytes(private_key_pem(key))
    return path


def identity_settings(
    make_database: Callable[[], str], keys_dir: Path, **overrides: Any
) -> tuple[IdentitySettings, Ed25519PrivateKey, Ed25519PrivateKey]:
    key, previous = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    values: dict[str, Any] = {
        "database_url": make_database(),
        "jwt_private_key_file": write_key(keys_dir, "current.pem", key),
        "jwt_previous_public_key_files": [write_key(keys_dir, "previous.pem", previous)],
        "redis_prefix": f"identity-test:{uuid.uuid4().hex[:10]}:",
        "mail_poll_interval_s": 0.5,
        "login_max_failures_per_client": 8,
        **overrides,
    }
    return IdentitySettings(**values), key, previous


@contextlib.asynccontextmanager
async def running_identity(
    settings: IdentitySettings, key: Ed25519PrivateKey, previous: Ed25519PrivateKey, *, send_mail: bool = True
) -> AsyncIterator[Identity]:
    redis = Redis.from_url(settings.redis_url.get_secret_value())
    async with ServiceHarness(
        settings,
        migrations_dir=MIGRATIONS_DIR,
        app_factory=create_app,  # type: ignore[arg-type]
        handlers=handlers,
    ) as harness:
        sender = MailSender(harness.pool, settings)
        task = asyncio.create_task(sender.run()) if send_mail else None
        try:
            yield Identity(harness, settings, key, previous, redis, os.environ["SMTP_SINK_DIR"])
        finally:
            sender.stop()
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            keys = [k async for k in redis.scan_iter(match=f"{settings.redis_prefix}*", count=500)]
            if keys:
                await redis.delete(*keys)
            await redis.aclose()


@pytest.fixture(scope="module")
async def identity(
    stack_env: dict[str, str], make_database: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Identity]:
    settings, key, previous = identity_settings(make_database, tmp_path_factory.mktemp("keys"))
    async with running_identity(settings, key, previous) as running:
        yield running
