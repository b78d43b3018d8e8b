"""A small client of the portal's public API (PUBLIC_API.md), for the demo and the end-to-end tests.

`mode="gateway"` talks to the gateway (`{base}/api/v1/...`), the way every frontend does.
`mode="direct"` sends the same requests to the services' internal APIs (`/internal/v1/...`, same
bodies and answers), which the gateway maps the public API onto: useful while a gateway route is
missing. `mode="auto"` asks the gateway's OpenAPI document whether it serves the routes needed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

GATEWAY_URL = "http://127.0.0.1:8000"
SERVICE_URLS = {
    "identity": "http://127.0.0.1:8001",
    "accounts": "http://127.0.0.1:8002",
    "ledger": "http://127.0.0.1:8003",
    "calculator": "http://127.0.0.1:8004",
    "receipts": "http://127.0.0.1:8005",
}
# Every public route this client calls: the gateway is used only when it serves them all.
NEEDED_ROUTES = (
    "/api/v1/auth/register",
    "/api/v1/auth/login",
    "/api/v1/accounts",
    "/api/v1/accounts/{}",
    "/api/v1/accounts/{}/services",
    "/api/v1/accounts/{}/payments",
    "/api/v1/accounts/{}/requests",
    "/api/v1/accounts/{}/readings",
)


def service_of(path: str) -> str:
    """Which service answers a public path (the gateway's mapping, for direct mode)."""
    parts = [p for p in path.split("?")[0].split("/") if p]
    if not parts or parts[0] in ("auth", "me"):
        return "identity"
    if parts[0] == "tariffs":
        return "calculator"
    if parts[0] in ("district-offices", "contact-center"):
        return "accounts"
    if parts[0] == "accounts" and len(parts) >= 3:
        return {
            "services": "ledger",
            "payments": "ledger",
            "balance": "ledger",
            "readings": "calculator",
            "calculation": "calculator",
            "consumption": "calculator",
            "receipts": "receipts",
            "ebill": "receipts",
        }.get(parts[2], "accounts")
    return "accounts"


class ApiError(RuntimeError):
    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        try:
            self.body: Any = response.json()
        except ValueError:
            self.body = response.text
        super().__init__(f"{response.request.method} {response.request.url} → {self.status}: {self.body}")


@dataclass
class PortalClient:
    base_url: str = GATEWAY_URL
    mode: str = "auto"  # gateway | direct | auto
    services: Mapping[str, str] = None  # type: ignore[assignment]
    timeout_s: float = 15.0
    token: str | None = None

    def __post_init__(self) -> None:
        if self.services is None:
            self.services = dict(SERVICE_URLS)
        self._http = httpx.AsyncClient(timeout=self.timeout_s)
        self._login: tuple[str, str] | None = None

    async def __aenter__(self) -> PortalClient:
        if self.mode == "auto":
            self.mode = "gateway" if await self.gateway_serves_api() else "direct"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def gateway_serves_api(self) -> bool:
        try:
            r = await self._http.get(f"{self.base_url}/api/v1/openapi.json")
        except httpx.HTTPError:
            return False
        if r.status_code != 200:
            return False
        paths = {re.sub(r"\{[^}]*\}", "{}", path) for path in r.json().get("paths", {})}
        return all(route in paths for route in NEEDED_ROUTES)

    def url(self, path: str) -> str:
        if self.mode == "direct":
            return f"{self.services[service_of(path)]}/internal/v1{path}"
        return f"{self.base_url}/api/v1{path}"

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        expect: tuple[int, ...] = (200,),
    ) -> httpx.Response:
        r = await self._send(method, path, json, params)
        if (
            r.status_code == 401
            and self._login is not None
            and 401 not in expect
            and not path.startswith("/auth/")
        ):
            # Access tokens are short-lived (identity: 5 minutes): a long wait outlives one. Log in again.
            await self.login(*self._login)
            r = await self._send(method, path, json, params)
        if r.status_code not in expect:
            raise ApiError(r)
        return r

    async def _send(
        self, method: str, path: str, json: Any, params: Mapping[str, str] | None
    ) -> httpx.Response:
        headers = {"Accept-Language": "ru"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return await self._http.request(method, self.url(path), json=json, params=params, headers=headers)

    # --- the calls the demo and the tests need -------------------------------------------------------
    async def register(self, email: str, password: str, full_name: str) -> httpx.Response:
        return await self.request(
            "POST",
            "/auth/register",
            json={"email": email, "password": password, "full_name": full_name},
            expect=(201, 409, 422),
        )

    async def login(self, email: str, password: str) -> str:
        """Log in; the credentials are kept to log in again when the access token expires."""
        r = await self.request("POST", "/auth/login", json={"email": email, "password": password})
        self.token = str(r.json()["access_token"])
        self._login = (email, password)
        return self.token

    async def link(self, account_no: str, month: str, amount: str) -> httpx.Response:
        body = {"account_no": account_no, "last_payment_month": month, "last_payment_amount": amount}
        return await self.request("POST", "/accounts", json=body, expect=(201, 422, 429))

    async def accounts(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (await self.request("GET", "/accounts")).json()
        return result

    async def services_of(self, account_no: str, first: str, last: str) -> list[dict[str, Any]]:
        r = await self.request("GET", f"/accounts/{account_no}/services", params={"from": first, "to": last})
        result: list[dict[str, Any]] = r.json()
        return result

    async def payments(self, account_no: str, first: str, last: str) -> list[dict[str, Any]]:
        r = await self.request("GET", f"/accounts/{account_no}/payments", params={"from": first, "to": last})
        result: list[dict[str, Any]] = r.json()
        return result

    async def receipts(self, account_no: str, first: str, last: str) -> list[dict[str, Any]]:
        """The bills issued for the account («Квитанции»): `[{period, amount_due, due_date, issued_at}]`."""
        r = await self.request("GET", f"/accounts/{account_no}/receipts", params={"from": first, "to": last})
        result: list[dict[str, Any]] = r.json()
        return result

    async def account(self, account_no: str) -> dict[str, Any]:
        result: dict[str, Any] = (await self.request("GET", f"/accounts/{account_no}")).json()
        return result
