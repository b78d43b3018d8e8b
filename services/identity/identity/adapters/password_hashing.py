"""argon2id password hashing (argon2-cffi), off the event loop.

Verification of an unknown e-mail runs against a dummy hash, so "no such user" costs the same time as
"wrong password" and the response time does not reveal which addresses are registered.

One hash costs ≈0.2 CPU-seconds and 64 MiB: at most `argon2_concurrency` (default: the CPU count) run at
once, and a request that cannot get a slot within `argon2_queue_wait_s` is refused at once (503 with
Retry-After) instead of queueing until every sign-in of a burst times out at the gateway.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from identity.settings import IdentitySettings

T = TypeVar("T")


class PasswordHashingBusy(Exception):
    """Every hashing slot stayed taken for the queue wait: the service is over its sign-in capacity."""


class Passwords:
    def __init__(self, settings: IdentitySettings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_cost_kib,
            parallelism=settings.argon2_parallelism,
            type=Type.ID,
        )
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(24))
        self.slots = asyncio.Semaphore(settings.argon2_concurrency or os.cpu_count() or 1)
        self._queue_wait_s = settings.argon2_queue_wait_s

    async def _in_slot(self, work: Callable[..., T], *args: object) -> T:
        try:
            await asyncio.wait_for(self.slots.acquire(), timeout=self._queue_wait_s)
        except TimeoutError:
            raise PasswordHashingBusy from None
        try:
            return await asyncio.to_thread(work, *args)
        finally:
            self.slots.release()

    async def hash(self, password: str) -> str:
        return await self._in_slot(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when `password` matches. With no hash (unknown user) it burns the same time and says no."""
        return await self._in_slot(self._verify, password_hash, password)

    def _verify(self, password_hash: str | None, password: str) -> bool:
        try:
            self._hasher.verify(password_hash or self._dummy_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
