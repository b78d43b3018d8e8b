"""Schemathesis over the whole public API (/api/v1/openapi.json), as a logged-in customer with a linked
account, valid and invalid requests, many per operation:

- never a 5xx;
- every 4xx is a problem+json in Russian (title, detail and every field message);
- invalid requests (negative mode) are refused with a 4xx, never accepted;
- the status code, the content type and, for 2xx, the body conform to the document.

The gateway runs in uvicorn on a thread of its own (schemathesis' calls are synchronous); the services
under honcho. Each case comes from a made-up client address, so identity's per-address lockout (wrong
passwords are among the generated cases) never reaches anyone else on the shared stack.

Examples per operation and mode: SECURITY_FUZZ_EXAMPLES (default 15; operations that hash a password
get a fifth of it; ~1100 calls). The full-size run (~4600 calls, several minutes):
`SECURITY_FUZZ_EXAMPLES=100 uv run pytest -s --timeout 1800 tests/security/bad_input -k schemathesis`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.security.support import (
    PASSWORD,
    SeededAccount,
    fake_ip,
    new_email,
    seed_account,
    served_gateway,
)

EXAMPLES = int(os.environ.get("SECURITY_FUZZ_EXAMPLES", "15"))
WORKERS = int(os.environ.get("SECURITY_FUZZ_WORKERS", "4"))
# argon2id costs ~0.1-0.5 s a hash on this machine: these operations get fewer examples.
HASHING = {
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/me/password"),
    ("POST", "/api/v1/me/email"),
    ("POST", "/api/v1/auth/password-reset/confirm"),
}
CYRILLIC = re.compile(r"[А-Яа-яЁё]")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@dataclass
class Fuzzed:
    url: str
    email: str
    token: str
    refresh_token: str
    account_no: str
    issued_at: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fresh_token(self) -> str:
        """A fresh access token every few minutes (they live 5)."""
        with self.lock:
            return self._fresh_token()

    def _fresh_token(self) -> str:
        if time.monotonic() - self.issued_at > 150:
            with httpx.Client(base_url=self.url, timeout=60, headers={"X-Forwarded-For": fake_ip()}) as c:
                r = c.post("/api/v1/auth/login", json={"email": self.email, "password": PASSWORD})
                assert r.status_code == 200, r.text
                self.token, self.refresh_token = r.json()["access_token"], r.json()["refresh_token"]
                self.issued_at = time.monotonic()
        return self.token


@pytest.fixture(scope="module")
def fuzzed(running_services: str, kafka_bootstrap: str) -> Iterator[Fuzzed]:
    with served_gateway(
        login_max_failures=10**6, link_max_failures=10**6, register_max_conflicts=10**6
    ) as url:
        # On a thread of its own: asyncio.run must not touch the test session's event loop.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            account: SeededAccount = pool.submit(asyncio.run, seed_account(kafka_bootstrap)).result(
                timeout=300
            )
        email = new_email("fuzz")
        with httpx.Client(base_url=url, timeout=60, headers={"X-Forwarded-For": fake_ip()}) as client:
            r = client.post(
                "/api/v1/auth/register",
                json={"email": email, "password": PASSWORD, "full_name": "Фаззер Тест Тестович"},
            )
            assert r.status_code == 201, r.text
            tokens = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}).json()
            auth = {"Authorization": f"Bearer {tokens['access_token']}"}
            for wait in (0, 2, 4, 8, 16):
                time.sleep(wait)
                r = client.post("/api/v1/accounts", json=account.proof(), headers=auth)
                if r.status_code == 201:
                    break
            assert r.status_code == 201, r.text
            # Until every service's projection knows the link, the calls would only test the 404 path.
            for tail in ("", "/payments", "/readings", "/receipts", "/requests", "/ebill"):
                for _ in range(60):
                    if (
                        client.get(f"/api/v1/accounts/{account.account_no}{tail}", headers=auth).status_code
                        == 200
                    ):
                        break
                    time.sleep(1)
        yield Fuzzed(url, email, tokens["access_token"], tokens["refresh_token"], account.account_no)


def _snapshot(fuzzed: Fuzzed) -> dict[str, Any]:
    """What the customer can read of their own state."""
    no = fuzzed.account_no
    state: dict[str, Any] = {}
    headers = {"Authorization": f"Bearer {fuzzed.fresh_token()}", "X-Forwarded-For": fake_ip()}
    with httpx.Client(base_url=fuzzed.url, timeout=60, headers=headers) as client:
        for path in ("/me", "/accounts", f"/accounts/{no}", f"/accounts/{no}/requests",
                     f"/accounts/{no}/readings", f"/accounts/{no}/ebill", f"/accounts/{no}/payments"):  # fmt: skip
            r = client.get(f"/api/v1{path}")
            assert r.status_code == 200, (path, r.text)
            state[path] = r.json()
    return state


def _problem_failures(response: Any, label: str) -> list[str]:
    """A 4xx must be a problem+json in Russian."""
    if not 400 <= response.status_code < 500:
        return []
    values = {k.lower(): v for k, v in response.headers.items()}.get("content-type", "")
    content_type = values[0] if isinstance(values, list) else values
    if not content_type.startswith("application/problem+json"):
        return [f"{label}: {response.status_code} is {content_type!r}, not a problem"]
    body = response.json()
    missing = {"type", "title", "status", "detail", "code", "errors"} - body.keys()
    if missing:
        return [f"{label}: problem without {sorted(missing)}"]
    texts = [body["title"], body["detail"], *(e.get("message", "") for e in body["errors"])]
    if not all(CYRILLIC.search(str(t)) for t in texts):
        return [f"{label}: not Russian: {body}"]
    return []


def generate(operation: Any, mode: GenerationMode) -> list[schemathesis.Case]:
    """The cases of one operation in one mode (drawn first: Hypothesis' drawing isn't thread-safe)."""
    method, path = operation.method.upper(), operation.path
    examples = max(3, EXAMPLES // 5) if (method, path) in HASHING else EXAMPLES
    cases: list[schemathesis.Case] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
    )
    def draw(case: schemathesis.Case) -> None:
        cases.append(case)

    try:
        draw()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE  # nothing to get wrong in it (e.g. no parameters at all)
    return cases


def _negated(case: schemathesis.Case, location: ParameterLocation) -> bool:
    component = case.meta.components.get(location) if case.meta is not None else None
    return component is not None and component.mode is GenerationMode.NEGATIVE


def call(
    case: schemathesis.Case, mode: GenerationMode, fuzzed: Fuzzed, failures: list[str], stats: Counter[str]
) -> None:
    method, path = case.method.upper(), case.operation.path
    # Unlinking the account, ending the session or changing the password would only turn the rest into
    # 404/401: those run without the customer's credentials (and hit the 401/404 paths).
    anonymous = path in ("/api/v1/auth/logout", "/api/v1/me/password", "/api/v1/me/email") or (
        method == "DELETE" and path == "/api/v1/accounts/{account_no}"
    )
    # Most account paths take the customer's own account (unless the path itself is the invalid part),
    # so the calls reach the services' logic instead of stopping at the 404.
    if (
        case.path_parameters
        and "account_no" in case.path_parameters
        and not anonymous
        and not _negated(case, ParameterLocation.PATH)
    ):
        case.path_parameters["account_no"] = fuzzed.account_no
    headers = {"X-Forwarded-For": fake_ip()}
    if not anonymous and not _negated(case, ParameterLocation.HEADER):
        headers["Authorization"] = f"Bearer {fuzzed.fresh_token()}"
    label = f"{mode.value} {case.method} {case.formatted_path}"
    response = case.call(base_url=fuzzed.url, headers=headers, timeout=60)
    with fuzzed.lock:
        stats[f"{response.status_code // 100}xx"] += 1
        stats["calls"] += 1
    found = _problem_failures(response, label)
    try:
        case.validate_response(response, checks=CHECKS, headers=headers)
    except FailureGroup as group:
        for failure in group.exceptions:
            found.append(
                f"{label} -> {response.status_code}: {failure.title}: {str(failure.message)[:300]}"
                f" [{response.text[:200]}] {case.body!r:.200}"
            )
    except AssertionError as exc:
        found.append(f"{label} -> {response.status_code}: {str(exc)[:300]}")
    failures.extend(found)


# Schemathesis' own strategies use `random`; Hypothesis warns about it (not about this test).
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
def test_no_generated_request_gets_a_server_error_or_an_unclear_answer(fuzzed: Fuzzed) -> None:
    api = schemathesis.openapi.from_url(f"{fuzzed.url}/api/v1/openapi.json")
    # Unknown query parameters are ignored by design (as by most HTTP APIs): not generated as "invalid".
    # The customer's own token, not generated ones (the token tests are in the attackers suite).
    api.config.generation.update(allow_extra_parameters=False, with_security_parameters=False)
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 35
    failures: list[str] = []
    stats: Counter[str] = Counter()
    started = time.monotonic()
    negative = [
        (case, GenerationMode.NEGATIVE) for op in operations for case in generate(op, GenerationMode.NEGATIVE)
    ]
    positive = [
        (case, GenerationMode.POSITIVE) for op in operations for case in generate(op, GenerationMode.POSITIVE)
    ]
    generated = time.monotonic() - started
    # The calls go side by side: they wait on the services far more than they use the CPU.
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        # Invalid requests first: all refused, they leave the customer's state exactly as it was.
        before = _snapshot(fuzzed)
        for future in [pool.submit(call, case, mode, fuzzed, failures, stats) for case, mode in negative]:
            future.result()
        after = _snapshot(fuzzed)
        if after != before:
            changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
            failures.append(f"invalid requests changed the customer's state: {changed}")
        for future in [pool.submit(call, case, mode, fuzzed, failures, stats) for case, mode in positive]:
            future.result()
    print(
        f"\nschemathesis: {len(operations)} operations, {stats['calls']} calls in {time.monotonic() - started:.0f} s "
        f"(generated in {generated:.0f} s) "
        f"({', '.join(f'{k}: {v}' for k, v in sorted(stats.items()) if k != 'calls')})"
    )
    unique = sorted(set(failures))
    assert not unique, f"{len(unique)} problems:\n" + "\n".join(unique[:80])
