"""The gateway's use of the services: every public operation, composed from the internal APIs.

Both the public API (`gateway.public_api`) and the portal pages (`gateway.portal`) go through here, so
authorization, caching and degradation behave the same for both. Nothing here reads a database.

Authorization: before an account-scoped call the gateway checks, from the set of accounts the caller
linked (accounts' `/internal/v1/access/{user}`, cached in Redis and invalidated by link events), that
the account is the caller's; otherwise 404. The services check again with their own projections. When
the gateway's check passed but a service's projection hasn't caught up with a fresh link yet, a read is
retried for a moment instead of answering 404.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from gateway.adapters.cache import ViewCache
from gateway.adapters.upstream import CallContext, Upstream, UpstreamProblem, UpstreamUnavailable
from gateway.problems import ApiProblem

ACCOUNT_NO = re.compile(r"[0-9]{10,12}")
PERIOD = re.compile(r"(19|20|21)[0-9]{2}-(0[1-9]|1[0-2])")
SERVICE_CODE = re.compile(r"[a-z][a-z0-9_]{1,39}")
T = TypeVar("T")

# A fresh link reaches the other services' projections through Kafka: wait this long for it.
LINK_PROPAGATION_S = 10.0


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller: the verified token's subject, and the context its calls carry."""

    user_id: str
    ctx: CallContext


@dataclass(frozen=True, slots=True)
class Document:
    content: bytes
    media_type: str
    filename: str | None = None


@dataclass
class AccountList:
    accounts: list[dict[str, Any]]
    balances_unavailable: bool = False


def _not_found() -> ApiProblem:
    return ApiProblem(404, "account_not_found")


def _is_account_not_found(problem: UpstreamProblem) -> bool:
    return problem.status == 404 and problem.code in ("account_not_found", "not_found", "")


def _balance_of(body: Any) -> str | None:
    """The balance from ledger's answer (`{balance}` or `{closing_balance}`), as the money string."""
    if isinstance(body, dict):
        for key in ("balance", "closing_balance", "amount"):
            value = body.get(key)
            if isinstance(value, str):
                return value
    return None


class Backend:
    def __init__(self, upstreams: dict[str, Upstream], cache: ViewCache) -> None:
        self.up = upstreams
        self.cache = cache

    # --- generic --------------------------------------------------------------------------------------
    async def call(
        self,
        service: str,
        method: str,
        path: str,
        ctx: CallContext,
        *,
        params: Mapping[str, str | None] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        return await self.up[service].json(method, path, ctx, params=params, json=json, headers=headers)

    async def document(
        self, service: str, path: str, ctx: CallContext, *, params: Mapping[str, str | None] | None = None
    ) -> Document:
        response = await self.up[service].request("GET", path, ctx, params=params, document=True)
        return _document(response)

    # --- authorization ---------------------------------------------------------------------------------
    async def linked_accounts(self, caller: Caller) -> set[str] | None:
        """The accounts the caller linked (cached); None when the accounts service can't say."""
        links = await self.cache.links(caller.user_id)
        if links is not None:
            return links
        version = await self.cache.user_version(caller.user_id)
        try:
            body = await self.call("accounts", "GET", f"/internal/v1/access/{caller.user_id}", caller.ctx)
        except UpstreamUnavailable:
            return None
        nos = [str(n) for n in body.get("account_nos", [])] if isinstance(body, dict) else []
        await self.cache.store_links(caller.user_id, version, nos)
        return set(nos)

    async def require_linked(self, caller: Caller, account_no: str) -> bool:
        """404 unless the caller linked the account. True when the gateway confirmed it itself."""
        if not ACCOUNT_NO.fullmatch(account_no):
            raise _not_found()
        links = await self.linked_accounts(caller)
        if links is None:
            return False  # accounts is down: the services' own checks decide
        if account_no not in links:
            raise _not_found()
        return True

    async def account_call(
        self,
        caller: Caller,
        account_no: str,
        service: str,
        method: str,
        subpath: str,
        *,
        params: Mapping[str, str | None] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        confirmed = await self.require_linked(caller, account_no)
        path = f"/internal/v1/accounts/{account_no}{subpath}"
        return await self._through_link_lag(
            confirmed and method == "GET",
            lambda: self.call(service, method, path, caller.ctx, params=params, json=json, headers=headers),
        )

    async def account_document(
        self, caller: Caller, account_no: str, service: str, subpath: str, params: Mapping[str, str | None]
    ) -> Document:
        confirmed = await self.require_linked(caller, account_no)
        path = f"/internal/v1/accounts/{account_no}{subpath}"
        return await self._through_link_lag(
            confirmed, lambda: self.document(service, path, caller.ctx, params=params)
        )

    async def _through_link_lag(self, retry: bool, call: Callable[[], Awaitable[T]]) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LINK_PROPAGATION_S
        while True:
            try:
                return await call()
            except UpstreamProblem as problem:
                if not (retry and _is_account_not_found(problem) and loop.time() < deadline):
                    raise
            await asyncio.sleep(0.25)

    # --- identity --------------------------------------------------------------------------------------
    async def identity(self, method: str, path: str, ctx: CallContext, json: Any = None) -> Any:
        return await self.call("identity", method, f"/internal/v1{path}", ctx, json=json)

    # --- accounts (composed and cached) ---------------------------------------------------------------
    async def account_list(self, caller: Caller) -> AccountList:
        """The caller's accounts with their balances (cached; a payment event drops the cache)."""
        uid = caller.user_id

        async def fill() -> tuple[dict[str, Any], bool]:
            rows = await self.call("accounts", "GET", "/internal/v1/accounts", caller.ctx)
            rows = list(rows) if isinstance(rows, list) else []
            nos = [str(r["account_no"]) for r in rows]
            await self.cache.remember_users_of(nos, uid)
            balances = await asyncio.gather(*(self._balance(caller, no) for no in nos))
            for row, (balance, _state) in zip(rows, balances, strict=True):
                row["balance"] = balance
            states = {state for _balance, state in balances}
            return {"accounts": rows, "balances_unavailable": "down" in states}, states <= {"ok"}

        def hot(value: dict[str, Any]) -> list[str]:
            accounts = [self.cache.hot_account_key(str(a["account_no"])) for a in value["accounts"]]
            return [self.cache.hot_user_key(uid), *accounts]

        value = await self.cache.get_or_fill(
            self.cache.accounts_key(uid), self.cache.user_version_key(uid), fill, hot_keys=hot
        )
        return AccountList(value["accounts"], bool(value.get("balances_unavailable")))

    async def _balance(self, caller: Caller, account_no: str) -> tuple[str | None, str]:
        """(balance, state): "ok"; "pending" while the ledger hasn't seen a fresh link yet; "down"."""

        async def fill() -> tuple[dict[str, Any], bool]:
            try:
                body = await self.call(
                    "ledger", "GET", f"/internal/v1/accounts/{account_no}/balance", caller.ctx
                )
            except UpstreamUnavailable:
                return {"balance": None, "state": "down"}, False
            except UpstreamProblem as problem:
                if problem.status == 404:
                    return {"balance": None, "state": "pending"}, False
                raise
            return {"balance": _balance_of(body), "state": "ok"}, True

        value = await self.cache.get_or_fill(
            self.cache.balance_key(account_no),
            self.cache.account_version_key(account_no),
            fill,
            hot_keys=lambda _value: [self.cache.hot_account_key(account_no)],
        )
        return value.get("balance"), str(value.get("state", "ok"))

    async def balance(self, caller: Caller, account_no: str) -> Any:
        return await self.account_call(caller, account_no, "ledger", "GET", "/balance")

    async def account_info(self, caller: Caller, account_no: str) -> dict[str, Any]:
        """An account's details with its district office (cached; account events drop the cache)."""
        confirmed = await self.require_linked(caller, account_no)

        async def fill() -> tuple[dict[str, Any], bool]:
            path = f"/internal/v1/accounts/{account_no}"
            info = await self._through_link_lag(
                confirmed, lambda: self.call("accounts", "GET", path, caller.ctx)
            )
            office = (info.get("district_office") or {}).get("code") if isinstance(info, dict) else None
            if office:
                await self.cache.remember_office(str(office), account_no)
            return info, True

        value: dict[str, Any] = await self.cache.get_or_fill(
            self.cache.account_key(account_no),
            self.cache.account_version_key(account_no),
            fill,
            hot_keys=lambda _value: [self.cache.hot_account_key(account_no)],
        )
        return value

    async def link_account(self, caller: Caller, body: dict[str, Any]) -> Any:
        try:
            return await self.call("accounts", "POST", "/internal/v1/accounts", caller.ctx, json=body)
        finally:
            await self.cache.invalidate_user(caller.user_id)

    async def unlink_account(self, caller: Caller, account_no: str) -> None:
        try:
            await self.account_call(caller, account_no, "accounts", "DELETE", "")
        finally:
            await self.cache.invalidate_user(caller.user_id)

    # --- reference --------------------------------------------------------------------------------------
    async def district_offices(self) -> Any:
        return await self.up["accounts"].get_json("/internal/v1/district-offices")

    async def aclose(self) -> None:
        for upstream in self.up.values():
            await upstream.aclose()


def _document(response: httpx.Response) -> Document:
    media_type = response.headers.get("content-type", "application/octet-stream")
    disposition = response.headers.get("content-disposition", "")
    filename = None
    match = re.search(r'filename="?([^";]+)"?', disposition)
    if match:
        filename = match.group(1)
    return Document(response.content, media_type, filename)


def new_request_id() -> str:
    return uuid.uuid4().hex
