"""Password hashing runs in bounded slots: over capacity a request is refused at once, never queued
until the gateway times out."""

from __future__ import annotations

import pytest

from identity.adapters.password_hashing import PasswordHashingBusy, Passwords
from identity.settings import IdentitySettings


def _passwords(concurrency: int, wait_s: float) -> Passwords:
    settings = IdentitySettings(
        database_url="postgresql://unused/unused",
        argon2_time_cost=1,
        argon2_memory_cost_kib=8 * 1024,
        argon2_parallelism=1,
        argon2_concurrency=concurrency,
        argon2_queue_wait_s=wait_s,
    )
    return Passwords(settings)


async def test_hash_and_verify_within_a_free_slot() -> None:
    passwords = _passwords(concurrency=1, wait_s=5.0)
    stored = await passwords.hash("correct horse battery")
    assert await passwords.verify(stored, "correct horse battery")
    assert not await passwords.verify(stored, "wrong")
    assert not await passwords.verify(None, "anything")  # unknown user: the dummy hash, a no


async def test_all_slots_taken_refuses_instead_of_queueing() -> None:
    passwords = _passwords(concurrency=1, wait_s=0.05)
    await passwords.slots.acquire()  # another sign-in holds the only slot
    try:
        with pytest.raises(PasswordHashingBusy):
            await passwords.verify(None, "anything")
    finally:
        passwords.slots.release()
    assert not await passwords.verify(None, "anything")  # the slot is free again
