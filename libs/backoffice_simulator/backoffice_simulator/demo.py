"""The local stack's demo: seeded history and a demo customer with two linked accounts.

`backoffice-sim demo` (after `make up`):
1. seeds the demo data through Kafka, deterministically: district offices, tariffs, background
   households, and the demo customer's three accounts with (at least) 24 months of history;
2. registers the demo customer through the public API (`POST /auth/register`), or logs in when the
   address is taken (a re-run);
3. links two accounts (`POST /accounts`) with the proof the simulator's own ledger gives (the month and
   amount of the last payment), retrying while the services are still ingesting;
4. closes the periods (PeriodClosed) once the calculator shows the linked accounts' readings (or after
   `readings_wait_s`: the billing run bills an account whenever it becomes known, and a reading that
   comes after its period's estimate trues it up, so waiting only keeps the history free of estimates);
5. waits (up to `settle_wait_s`) until both linked accounts show every month of their history accrued
   («Информация по услугам») and a bill issued for each («Квитанции»): the calculator's billing run
   publishes PeriodBilled, the ledger posts the charges, receipts issues the bills;
6. prints the login, what the linked accounts show, and one more account number with its proof, for
   linking by hand.

State, in `.local/` (git-ignored, never committed): `demo-credentials.txt` (the e-mail and a strong
password, generated once) and `demo-state.json` (the first month of the demo history and the seed). A
re-run publishes byte-identical messages for the months it already published (the services
de-duplicate them) and appends the months that have ended since.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from backoffice_simulator.generator import (
    DEMO_ACCOUNTS,
    DEMO_FULL_NAME,
    DEMO_LINKED,
    DEMO_MANUAL,
    DEMO_MONTHS,
    Month,
    Scenario,
    World,
    default_start,
    generate,
)
from backoffice_simulator.kafka import ensure_topics, publish, repo_root
from backoffice_simulator.ledger import SimLedger
from backoffice_simulator.portal import ApiError, PortalClient

DEMO_EMAIL = "demo@example.kz"
DEMO_SEED = 2026
DEMO_BACKGROUND = 30
DEMO_BACKGROUND_PREFIX = "770200"
CREDENTIALS_FILE = "demo-credentials.txt"
STATE_FILE = "demo-state.json"
LINK_WAITS_S = (3.0, 6.0, 12.0, 24.0)  # 4 failed proofs at most: under the accounts service's limit of 5


@dataclass(frozen=True, slots=True)
class Credentials:
    email: str
    password: str


@dataclass
class DemoResult:
    email: str
    credentials_file: Path
    registered: bool
    linked: dict[str, dict[str, str]] = field(default_factory=dict)
    manual: dict[str, str] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    mode: str = ""
    published: int = 0
    # Per linked account: months of the demo history, months accrued, bills issued (after step 5).
    history: dict[str, dict[str, int]] = field(default_factory=dict)
    complete: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "credentials_file": str(self.credentials_file),
            "registered": self.registered,
            "linked": self.linked,
            "manual": self.manual,
            "failures": self.failures,
            "mode": self.mode,
            "published": self.published,
            "history": self.history,
            "complete": self.complete,
        }


def local_dir() -> Path:
    return Path(os.environ.get("BACKOFFICE_SIM_LOCAL_DIR", repo_root() / ".local"))


def load_or_create_credentials(path: Path, email: str = DEMO_EMAIL) -> Credentials:
    if path.exists():
        values = dict(
            line.split("=", 1)
            for line in path.read_text().splitlines()
            if "=" in line and not line.startswith("#")
        )
        return Credentials(values["email"].strip(), values["password"].strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(18)  # 24 characters, ~144 bits
    content = (
        "# The local stack's demo customer (backoffice-sim demo). Generated once; never commit it.\n"
        f"email={email}\npassword={password}\n"
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    return Credentials(email, password)


def load_or_create_state(directory: Path) -> dict[str, Any]:
    path = directory / STATE_FILE
    if path.exists():
        state: dict[str, Any] = json.loads(path.read_text())
        return state
    state = {
        "start": str(default_start(DEMO_MONTHS)),
        "seed": DEMO_SEED,
        "background_accounts": DEMO_BACKGROUND,
    }
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2) + "\n")
    return state


def demo_scenario(state: dict[str, Any], *, background: int | None = None) -> Scenario:
    """Background households keep the first 24 months; the demo accounts run to the last ended month."""
    start = Month.parse(state["start"])
    last_ended = default_start(1)
    return Scenario(
        seed=int(state["seed"]),
        accounts=int(state["background_accounts"] if background is None else background),
        months=DEMO_MONTHS,
        start=start,
        demo=True,
        account_prefix=DEMO_BACKGROUND_PREFIX,
        demo_start=start,
        demo_end=max(last_ended, start.plus(DEMO_MONTHS - 1)),
    )


def demo_world(state: dict[str, Any]) -> tuple[World, SimLedger]:
    world = generate(demo_scenario(state))
    return world, SimLedger().record_all(world.messages)


async def run_demo(
    *,
    bootstrap: str,
    gateway: str,
    mode: str = "auto",
    seed: bool = True,
    email: str = DEMO_EMAIL,
    credentials_file: Path | None = None,
    background: int | None = None,
    show_progress: bool = True,
    log: Callable[[str], None] = print,
    waits: tuple[float, ...] = LINK_WAITS_S,
    readings_wait_s: float = 300.0,
    settle_wait_s: float = 600.0,
) -> DemoResult:
    """See the module doc. The state (the demo's first month) is always the stack's own
    (`.local/demo-state.json`), so every run publishes the same history; `email`, `credentials_file`
    and `background` let a test register its own customer and publish only the demo accounts."""
    directory = local_dir()
    state = load_or_create_state(directory)
    credentials_path = credentials_file or directory / CREDENTIALS_FILE
    credentials = load_or_create_credentials(credentials_path, email)
    world = generate(demo_scenario(state, background=background))
    ledger = SimLedger().record_all(world.messages)
    result = DemoResult(credentials.email, credentials_path, registered=False)
    # The period closings go last, once the calculator has the readings: a history of two years is sent
    # in seconds, and a period closed before its reading is estimated first (then trued up by it).
    history = [m for m in world.messages if m.event_type != "PeriodClosed"]
    closings = [m for m in world.messages if m.event_type == "PeriodClosed"]
    if seed:
        await ensure_topics(bootstrap)
        result.published = await publish(
            bootstrap, history, description="seeding the demo", show_progress=show_progress
        )
        log(f"published {result.published} back-office messages (demo history from {state['start']})")
    async with PortalClient(gateway, mode=mode) as client:
        result.mode = client.mode
        if client.mode == "direct":
            log("the gateway does not serve the public API routes yet: using the services' internal APIs")
        r = await client.register(credentials.email, credentials.password, DEMO_FULL_NAME)
        result.registered = r.status_code == 201
        if r.status_code not in (201, 409) and not _taken(r.json()):
            raise ApiError(r)
        try:
            await client.login(credentials.email, credentials.password)
        except ApiError as exc:
            if exc.status == 401:
                raise RuntimeError(
                    f"{credentials.email} exists with another password than {result.credentials_file}: "
                    "reset it (POST /api/v1/auth/password-reset, the mail is in the SMTP sink) and update the file"
                ) from exc
            raise
        for no in DEMO_LINKED:
            proof = ledger.proof(no)
            assert proof is not None, f"the demo account {no} has no payment"
            outcome = await _link_with_retries(client, proof, waits, log)
            if outcome is None:
                result.linked[no] = proof
            else:
                result.failures[no] = outcome
        manual = ledger.proof(DEMO_MANUAL)
        assert manual is not None
        result.manual = manual
        if seed:
            if not await _readings_in(client, ledger, list(result.linked), readings_wait_s):
                log(
                    "the calculator has not got every reading yet; closing the periods anyway"
                    " (those months are estimated first, then trued up by their readings)"
                )
            result.published += await publish(bootstrap, closings, description="closing", show_progress=False)
            log(f"closed {len(closings)} periods: the calculator bills them, the ledger and receipts follow")
        months = [str(m) for m in world.scenario.demo_window]
        if result.linked:
            result.complete = await _history_settled(
                client, list(result.linked), months, settle_wait_s, result
            )
            if not result.complete:
                log(
                    f"not every month is accrued and billed yet after {settle_wait_s:.0f}s"
                    " (the services are still working through the history): look again in a while"
                )
    return result


async def _history_settled(
    client: PortalClient, accounts: list[str], months: list[str], timeout_s: float, result: DemoResult
) -> bool:
    """True once every linked account shows each month of `months` accrued and billed (a bill issued)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    wanted = set(months)
    while True:
        complete = True
        for no in accounts:
            accrued, billed = await _accrued_and_billed(client, no, months[0], months[-1])
            result.history[no] = {
                "months": len(wanted),
                "accrued": len(wanted & accrued),
                "bills": len(wanted & billed),
            }
            complete = complete and wanted <= accrued and wanted <= billed
        if complete or loop.time() > deadline:
            return complete
        await asyncio.sleep(3.0)


async def _accrued_and_billed(
    client: PortalClient, no: str, first: str, last: str
) -> tuple[set[str], set[str]]:
    """The months with electricity accrued (ledger) and the months with a bill issued (receipts)."""
    try:
        services = await client.services_of(no, first, last)
        bills = await client.receipts(no, first, last)
    except ApiError as exc:
        if exc.status in (404, 502, 503, 504):  # a link not projected yet; a service busy or restarting
            return set(), set()
        raise
    electricity = next((s for s in services if s.get("service_code") == "electricity"), None)
    periods = electricity["periods"] if electricity else []
    accrued = {str(p["period"]) for p in periods if Decimal(str(p["accrued"])) != 0}
    return accrued, {str(b["period"]) for b in bills}


async def _readings_in(
    client: PortalClient, ledger: SimLedger, accounts: list[str], timeout_s: float
) -> bool:
    """True once the calculator shows every grid reading of the linked demo accounts."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        complete = True
        for no in accounts:
            try:
                readings = (await client.request("GET", f"/accounts/{no}/readings", expect=(200, 404))).json()
            except ApiError:
                readings = []
            if not isinstance(readings, list) or len(readings) < len(ledger.accounts[no].readings):
                complete = False
        if complete or loop.time() > deadline:
            return complete
        await asyncio.sleep(2.0)


def _taken(body: Any) -> bool:
    text = json.dumps(body, ensure_ascii=False).casefold()
    return "taken" in text or "занят" in text or "already" in text or "уже" in text


async def _link_with_retries(
    client: PortalClient, proof: dict[str, str], waits: tuple[float, ...], log: Callable[[str], None]
) -> str | None:
    """None once linked; else why not. A 422 right after seeding means "not ingested yet": wait, retry."""
    no = proof["account_no"]
    for attempt, wait in enumerate((0.0, *waits)):
        if wait:
            log(f"{no}: the proof is not recognised yet (services still ingesting); retrying in {wait:.0f}s")
            await asyncio.sleep(wait)
        r = await client.link(no, proof["last_payment_month"], proof["last_payment_amount"])
        if r.status_code == 201:
            return None
        if r.status_code == 429:
            retry_after = int(r.headers.get("Retry-After", "60"))
            return f"rate-limited after {attempt + 1} attempts (Retry-After {retry_after}s): run the demo again later"
    return f"the proof was still refused after {len(waits) + 1} attempts: are the accounts and ledger workers running?"


def summary_lines(result: DemoResult) -> list[str]:
    lines = [
        f"Demo customer: {result.email} (password in {result.credentials_file})",
        f"  {'registered now' if result.registered else 'already registered: logged in'}; API via {result.mode}",
    ]
    for no, proof in result.linked.items():
        lines.append(
            f"  linked {no} (last payment {proof['last_payment_month']}: {proof['last_payment_amount']} ₸)"
        )
        shown = result.history.get(no)
        if shown:
            lines.append(
                f"    {shown['accrued']} of {shown['months']} months accrued, {shown['bills']} bills issued"
            )
    for no, why in result.failures.items():
        lines.append(f"  NOT linked {no}: {why}")
    if result.manual:
        lines.append(
            f"Link one more by hand («Добавить новый лицевой счёт»): {result.manual['account_no']},"
            f" last payment month {result.manual['last_payment_month']},"
            f" amount {result.manual['last_payment_amount']}"
        )
    return lines


__all__ = [
    "DEMO_ACCOUNTS",
    "DEMO_EMAIL",
    "DemoResult",
    "demo_scenario",
    "demo_world",
    "load_or_create_credentials",
    "load_or_create_state",
    "run_demo",
    "summary_lines",
]
