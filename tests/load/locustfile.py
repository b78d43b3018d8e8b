"""Locust: customers of the portal against the gateway, in rising steps (run by tests/load/run.py).

Each simulated customer is a pre-registered user with linked accounts (LOAD_USERS_FILE). It signs in
twice, as the portal's browser does (the login form, with its CSRF token and session cookie) and as an
app does (POST /api/v1/auth/login), then, with a second of thinking between clicks:

| weight | what |
|---|---|
| 20 | the start page «Доступные лицевые счета» (portal HTML) |
| 15 | services: GET /api/v1/accounts/{no}/services |
| 15 | payments: GET /api/v1/accounts/{no}/payments |
| 10 | receipts: the list (API), then one bill's HTML view (portal) |
| 5 | a bill's PDF download (API) |
| 10 | the calculator: POST /api/v1/tariffs/quote (public) and /api/v1/accounts/{no}/calculation |
| 5 | a reading submission (API): the customer's first account, once (a day allows one), then its calculation |
| 1 | login again (API; argon2id makes it the most expensive request there is) |

Customers arrive at 2 per second (LOAD_SPAWN_RATE), as they would over a morning, not all at once; each
one's two sign-ins are argon2id verifications (~20-35 ms of one core each with identity's OWASP
parameters; the driver's sign-in burst tests the all-at-once case).

Every answer other than the expected status is an error. Per step (LOAD_STEPS, JSON list of
[users, seconds]) the response times of every request are kept, and at the end the percentiles and
errors per step go to LOAD_RESULTS (JSON). Only loopback targets are allowed. LOAD_TOUR=1 (the smoke
test) makes every customer do each request of the mix once before the random mix starts.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections import defaultdict
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlsplit

from locust import HttpUser, LoadTestShape, between, events, task

USERS: list[dict[str, Any]] = json.loads(open(os.environ["LOAD_USERS_FILE"], encoding="utf-8").read())  # noqa: SIM115
STEPS: list[list[float]] = json.loads(os.environ.get("LOAD_STEPS", "[[5, 30], [10, 30], [20, 30]]"))
RESULTS = os.environ.get("LOAD_RESULTS", "artifacts/load-results.json")
SPAWN_RATE = float(os.environ.get("LOAD_SPAWN_RATE", "2"))
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')

_state: dict[str, Any] = {"step": 0, "started": time.monotonic(), "next_user": 0}
_samples: dict[int, list[tuple[str, float, bool, str]]] = defaultdict(list)


@events.init.add_listener
def _loopback_only(environment: Any, **_: Any) -> None:
    host = urlsplit(environment.host or "").hostname or ""
    if not (host == "localhost" or host.startswith("127.")):
        raise SystemExit(f"refusing to load a non-loopback host: {host!r}")


@events.request.add_listener
def _record(request_type: str, name: str, response_time: float, exception: Any, **_: Any) -> None:
    _samples[_state["step"]].append(
        (name, response_time, exception is not None, repr(exception)[:300] if exception else "")
    )


@events.quitting.add_listener
def _write(environment: Any, **_: Any) -> None:
    steps = []
    for index, (users, seconds) in enumerate(STEPS):
        samples = _samples.get(index, [])
        steps.append({"step": index + 1, "users": users, "seconds": seconds, "samples": samples})
    with open(RESULTS, "w", encoding="utf-8") as handle:
        json.dump({"steps": steps}, handle)


class Steps(LoadTestShape):
    """Rising steps of concurrent customers; each holds for its seconds, then the next one starts."""

    def tick(self) -> tuple[int, float] | None:
        elapsed = self.get_run_time()
        total = 0.0
        for index, (users, seconds) in enumerate(STEPS):
            total += seconds
            if elapsed < total:
                _state["step"] = index
                return int(users), SPAWN_RATE
        return None


class Customer(HttpUser):
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        me = USERS[_state["next_user"] % len(USERS)]
        _state["next_user"] += 1
        self.me = me
        self.accounts = [a["account_no"] for a in me["accounts"]]
        self.bills = {a["account_no"]: a["bills"] for a in me["accounts"]}
        self.submitted: set[str] = set()
        self.rng = random.Random(me["email"])
        self._web_login()
        self._api_login()
        self.digits: dict[str, int] = {}
        for no in self.accounts:  # the account's page: its meter's digits (a reading past them rolls over)
            r = self._get(f"/api/v1/accounts/{no}", "api: GET /accounts/{no}")
            self.digits[no] = int(r.json()["meter"]["digits"]) if r.status_code == 200 else 6
        if os.environ.get("LOAD_TOUR") == "1":  # the smoke test: every request of the mix once first
            for step in (self.start_page, self.services, self.payments, self.receipts, self.receipt_pdf,
                         self.calculator, self.submit_reading, self.login_again):  # fmt: skip
                step()

    # --- signing in -----------------------------------------------------------------------------------
    def _web_login(self) -> None:
        self.client.cookies.clear()
        with self.client.get("/login", name="portal: GET /login", catch_response=True) as r:
            match = CSRF.search(r.text)
            if r.status_code != 200 or not match:
                r.failure(f"login page: {r.status_code}")
                return
        form = {"email": self.me["email"], "password": self.me["password"], "csrf_token": match.group(1)}
        with self.client.post("/login", data=form, name="portal: POST /login", allow_redirects=False,
                              catch_response=True) as r:  # fmt: skip
            if r.status_code != 303:
                r.failure(f"login form: {r.status_code} {r.text[:200]}")

    def _api_login(self) -> None:
        with self.client.post("/api/v1/auth/login", json={"email": self.me["email"], "password": self.me["password"]},
                              name="api: POST /auth/login", catch_response=True) as r:  # fmt: skip
            if r.status_code != 200:
                r.failure(f"{r.status_code} {r.text[:200]}")
                return
            self.token = r.json()["access_token"]
            self.refresh_token = r.json()["refresh_token"]
            self.token_at = time.monotonic()

    def _auth(self) -> dict[str, str]:
        if time.monotonic() - self.token_at > 200:  # access tokens live 300 s: refresh before they expire
            with self.client.post("/api/v1/auth/refresh", json={"refresh_token": self.refresh_token},
                                  name="api: POST /auth/refresh", catch_response=True) as r:  # fmt: skip
                if r.status_code == 200:
                    self.token = r.json()["access_token"]
                    self.refresh_token = r.json()["refresh_token"]
                    self.token_at = time.monotonic()
                else:
                    r.failure(f"{r.status_code} {r.text[:200]}")
        return {"Authorization": f"Bearer {self.token}", "Accept-Language": "ru"}

    def _get(
        self,
        path: str,
        name: str,
        *,
        api: bool = True,
        expect: int = 200,
        params: dict[str, str] | None = None,
    ) -> Any:
        headers = self._auth() if api else {}
        with self.client.get(path, name=name, headers=headers, params=params, catch_response=True,
                             allow_redirects=False) as r:  # fmt: skip
            if r.status_code != expect:
                r.failure(f"{r.status_code} {r.text[:200]}")
            return r

    # --- the mix --------------------------------------------------------------------------------------
    @task(20)
    def start_page(self) -> None:
        r = self._get("/", "portal: GET / (start page)", api=False)
        if r.status_code == 200 and self.accounts[0] not in r.text:
            r.failure("the start page does not list the user's account")

    @task(15)
    def services(self) -> None:
        no = self.rng.choice(self.accounts)
        today = date.today()
        params = {"from": f"{today.year - 1}-{today.month:02d}", "to": f"{today.year}-{today.month:02d}"}
        self._get(f"/api/v1/accounts/{no}/services", "api: GET /accounts/{no}/services", params=params)

    @task(15)
    def payments(self) -> None:
        no = self.rng.choice(self.accounts)
        today = date.today()
        params = {"from": (today - timedelta(days=365)).isoformat(), "to": today.isoformat()}
        self._get(f"/api/v1/accounts/{no}/payments", "api: GET /accounts/{no}/payments", params=params)

    @task(10)
    def receipts(self) -> None:
        no = self.rng.choice(self.accounts)
        self._get(f"/api/v1/accounts/{no}/receipts", "api: GET /accounts/{no}/receipts")
        period = self.rng.choice(self.bills[no])
        r = self._get(
            f"/accounts/{no}/receipts/{period}", "portal: GET /accounts/{no}/receipts/{period}", api=False
        )
        if r.status_code == 200 and no not in r.text:
            r.failure("the bill page does not show its account")

    @task(5)
    def receipt_pdf(self) -> None:
        no = self.rng.choice(self.accounts)
        period = self.rng.choice(self.bills[no])
        r = self._get(
            f"/api/v1/accounts/{no}/receipts/{period}.pdf", "api: GET /accounts/{no}/receipts/{period}.pdf"
        )
        if r.status_code == 200 and not r.content.startswith(b"%PDF"):
            r.failure("not a PDF")

    @task(10)
    def calculator(self) -> None:
        today = date.today()
        quote = {
            "tariff_option": self.rng.choice(["flat", "tiered"]),
            "residents": self.rng.randint(1, 5),
            "electric_stove": self.rng.random() < 0.3,
            "living_alone": False,
            "meter_digits": 6,
            "previous": {"date": (today - timedelta(days=30)).isoformat(), "value": "1000.00"},
            "current": {"date": today.isoformat(), "value": f"{1000 + self.rng.randint(50, 600)}.00"},
        }
        with self.client.post("/api/v1/tariffs/quote", json=quote, name="api: POST /tariffs/quote",
                              catch_response=True) as r:  # fmt: skip
            if r.status_code != 200:
                r.failure(f"{r.status_code} {r.text[:200]}")
        self._calculation(self.accounts[-1])

    def _calculation(self, no: str) -> None:
        last = self._last_reading(no)
        if last is None:
            return
        body = {
            "reading_date": date.today().isoformat(),
            "reading_value": self._next_value(no, last),
        }
        with self.client.post(f"/api/v1/accounts/{no}/calculation", json=body, headers=self._auth(),
                              name="api: POST /accounts/{no}/calculation", catch_response=True) as r:  # fmt: skip
            if r.status_code != 200:
                r.failure(f"{r.status_code} {r.text[:200]}")

    def _next_value(self, no: str, last: int) -> str:
        """A month or so of consumption after `last`, rolling over past the meter's digits."""
        return f"{(last + self.rng.randint(20, 300)) % 10 ** self.digits.get(no, 6)}.00"

    def _last_reading(self, no: str) -> int | None:
        r = self._get(f"/api/v1/accounts/{no}/readings", "api: GET /accounts/{no}/readings")
        if r.status_code != 200:
            return None
        readings = sorted(r.json(), key=lambda x: x["reading_date"])
        return int(float(readings[-1]["value"])) if readings else 0

    @task(5)
    def submit_reading(self) -> None:
        """Today's reading of the first account, once; the last account is the calculator's (a calculation
        dated today needs a last reading before today)."""
        no = self.accounts[0]
        if no in self.submitted or len(self.accounts) < 2:
            self._calculation(self.accounts[-1])
            return
        self.submitted.add(no)
        last = self._last_reading(no)
        if last is None:
            return
        body = {
            "reading_date": date.today().isoformat(),
            "value": self._next_value(no, last),
            "confirm_implausible": True,
        }
        with self.client.post(
            f"/api/v1/accounts/{no}/readings",
            json=body,
            headers=self._auth(),
            name="api: POST /accounts/{no}/readings",
            catch_response=True,
        ) as r:
            if r.status_code != 201:
                r.failure(f"{r.status_code} {r.text[:200]}")

    @task(1)
    def login_again(self) -> None:
        self._api_login()
