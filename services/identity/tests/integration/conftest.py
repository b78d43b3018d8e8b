"""Fixtures of identity's integration tests (helpers: identity_testkit.py)."""

import pytest

from services.identity.tests.integration.identity_testkit import Identity, random_ip
from services.identity.tests.integration.identity_testkit import identity as identity

__all__ = ["identity"]


@pytest.fixture(autouse=True)
def own_client_address(request: pytest.FixtureRequest) -> None:
    """Each test calls from its own client address, so per-client failure counters don't carry over."""
    if "identity" in request.fixturenames:
        running: Identity = request.getfixturevalue("identity")
        running.client.headers["X-Forwarded-For"] = random_ip()
