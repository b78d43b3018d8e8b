"""Password hashing: OWASP's argon2id parameters by default, outdated hashes recognised, and bounded
slots — a burst queues (latency), only a wait past the queue limit is refused, never a timeout at the
gateway."""

from __future__ import annotations

import asyncio

import pytest
from argon2 import PasswordHasher, Type

from identity.adapters.password_hashing import PasswordHashingBusy, Passwords
from identity.settings import IdentitySettings

UNUSED_DB = "postgresql://unused/unused"


def _passwords(concurrency: int, wait_s: float) -> Passwords:
    settings = IdentitySettings(
        database_url=UNUSED_DB,
        argon2_time_cost=1,
        argon2_memory_cost_kib=8 * 1024,
        argon2_parallelism=1,
        argon2_concurrency=concurrency,
        argon2_queue_wait_s=wait_s,
    )
    return Passwords(settings)


async def test_defaults_are_owasps_argon2id_and_other_parameters_need_a_rehash() -> None:
    passwords = Passwords(IdentitySettings(database_url=UNUSED_DB))
    try:
        assert passwords.parameters == "m=19456,t=2,p=1"
        assert passwords.concurrency >= 1
        stored = await passwords.hash("correct horse battery")
        assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        assert not passwords.needs_rehash(stored)
        # argon2-cffi's own defaults (RFC 9106's second profile: m=64 MiB, t=3, p=4) are "other parameters";
        # a cheaper hash of the same shape stands in for it here.
        older = PasswordHasher(time_cost=3, memory_cost=8 * 1024, parallelism=4, type=Type.ID).hash("x")
        assert passwords.needs_rehash(older)
        assert await passwords.verify(older, "x")  # still accepted until it is upgraded
        assert passwords.needs_rehash("not a hash")
    finally:
        passwords.close()


async def test_hash_and_verify_within_a_free_slot() -> None:
    passwords = _passwords(concurrency=1, wait_s=5.0)
    stored = await passwords.hash("correct horse battery")
    assert await passwords.verify(stored, "correct horse battery")
    assert not await passwords.verify(stored, "wrong")
    assert not await passwords.verify(None, "anything")  # unknown user: the dummy hash, a no
    assert not await passwords.verify("garbage", "anything")
    passwords.close()


async def test_a_burst_queues_for_the_slots_instead_of_failing() -> None:
    passwords = _passwords(concurrency=1, wait_s=120.0)
    stored = await passwords.hash("correct horse battery")
    results = await asyncio.gather(*(passwords.verify(stored, "correct horse battery") for _ in range(12)))
    assert results == [True] * 12
    passwords.close()


async def test_all_slots_taken_past_the_queue_wait_refuses() -> None:
    passwords = _passwords(concurrency=1, wait_s=0.05)
    await passwords.slots.acquire()  # another sign-in holds the only slot
    try:
        with pytest.raises(PasswordHashingBusy):
            await passwords.verify(None, "anything")
    finally:
        passwords.slots.release()
    assert not await passwords.verify(None, "anything")  # the slot is free again
    passwords.close()
