"""argon2id password hashing (argon2-cffi), in bounded slots off the event loop.

Parameters are settings (`IDENTITY_ARGON2_*`), by default OWASP's Password Storage Cheat Sheet
argon2id configuration: m = 19456 KiB (19 MiB), t = 2, p = 1 (≈20 ms of one core here; README,
"Passwords"). A stored hash made with other parameters is upgraded at the next successful sign-in
(`needs_rehash`).

Verification of an unknown e-mail runs against a dummy hash made with the same parameters, so "no such
user" costs the same as "wrong password" and the response time does not reveal which addresses exist.

Hashing runs on a thread pool of its own, one thread per slot (`argon2_concurrency`, default: the CPUs
this process may use; p = 1 keeps one hash on one core), never on the event loop and never competing
with other `to_thread` work. A burst of sign-ins queues for a slot: overload shows as latency. Only a
request that could not get a slot within `argon2_queue_wait_s` — which must stay below the gateway's
timeout for identity (GATEWAY_IDENTITY_TIMEOUT_S, 15 s) — is refused (`PasswordHashingBusy` → 503 with
Retry-After), so identity answers before the gateway gives up on it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from prometheus_client import Counter, Histogram

from identity.settings import IdentitySettings

T = TypeVar("T")

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0)
HASH_SECONDS = Histogram(
    "identity_password_hash_seconds", "Wall time of one argon2id hash or verification", buckets=_BUCKETS
)
QUEUE_SECONDS = Histogram(
    "identity_password_hash_queue_seconds", "Time a hash waited for a free slot", buckets=_BUCKETS
)
BUSY = Counter("identity_password_hash_busy_total", "Hashes refused: no slot within the queue wait")


class PasswordHashingBusy(Exception):
    """Every hashing slot stayed taken for the queue wait: the service is over its sign-in capacity."""


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity, e.g. a container's cpuset), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


class Passwords:
    def __init__(self, settings: IdentitySettings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_cost_kib,
            parallelism=settings.argon2_parallelism,
            type=Type.ID,
        )
        # Made with the configured parameters: verifying against it costs what a real verification costs.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(24))
        self.concurrency = settings.argon2_concurrency or available_cpus()
        self.slots = asyncio.Semaphore(self.concurrency)
        self._executor = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="argon2")
        self._queue_wait_s = settings.argon2_queue_wait_s

    @property
    def parameters(self) -> str:
        """The configured parameters as they appear in a hash: `m=19456,t=2,p=1`."""
        return self._dummy_hash.split("$")[3]

    async def _in_slot(self, work: Callable[..., T], *args: object) -> T:
        queued = time.perf_counter()
        try:
            async with asyncio.timeout(self._queue_wait_s):
                await self.slots.acquire()
        except TimeoutError:
            BUSY.inc()
            raise PasswordHashingBusy from None
        started = time.perf_counter()
        QUEUE_SECONDS.observe(started - queued)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)
        finally:
            self.slots.release()
            HASH_SECONDS.observe(time.perf_counter() - started)

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
        """True when the hash was made with other parameters than the configured ones (or is unreadable)."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
