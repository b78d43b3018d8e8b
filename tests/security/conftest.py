"""Fixtures of the security suites (bad input, attackers): the whole stack under honcho, the gateway under
test in-process, and a small world seeded once per session through the back-office topics:

- `alice` with two linked accounts, `bob` with one (the IDOR matrix needs a victim and an attacker);
- `unlinked`: an account nobody linked (an attacker's linking target).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.security.support import (
    Customer,
    Gateway,
    SeededAccount,
    link,
    new_customer,
    running_gateway,
    seed_account,
    wait_until_readable,
)


@dataclass
class World:
    alice: Customer
    bob: Customer
    seeded: dict[str, SeededAccount]
    unlinked: SeededAccount


@pytest.fixture(scope="session")
async def gateway(running_services: str, stack_env: dict[str, str]) -> AsyncIterator[Gateway]:
    """The gateway most tests share (limits high enough that tests never trip each other's)."""
    async with running_gateway(login_max_failures=1000, link_max_failures=1000) as gw:
        yield gw


@pytest.fixture
def make_gateway(running_services: str, stack_env: dict[str, str]) -> Callable[..., Any]:
    """Another gateway with its own settings (low limits, another proxy setup)."""
    return running_gateway


@pytest.fixture
async def world(seeded_world: World, gateway: Gateway) -> World:
    async with gateway.client() as c:
        for customer in (seeded_world.alice, seeded_world.bob):
            await customer.refresh_if_old(c)
    return seeded_world


@pytest.fixture(scope="session")
async def seeded_world(gateway: Gateway, kafka_bootstrap: str) -> World:
    seeded = await asyncio.gather(
        seed_account(kafka_bootstrap),
        seed_account(kafka_bootstrap, amount="3100.50"),
        seed_account(kafka_bootstrap, amount="5200.00"),
        seed_account(kafka_bootstrap, amount="2750.25"),
    )
    a1, a2, b1, free = seeded
    async with gateway.client() as c:
        alice = await new_customer(c, "Ахметова Алия Сериковна")
        bob = await new_customer(c, "Бекмуратов Бауыржан Ерланович")
        await link(c, alice, a1)
        await link(c, alice, a2)
        await link(c, bob, b1)
        await asyncio.gather(
            *(wait_until_readable(c, alice, no) for no in alice.accounts),
            wait_until_readable(c, bob, bob.account),
        )
    return World(alice, bob, {s.account_no: s for s in (a1, a2, b1)}, free)
