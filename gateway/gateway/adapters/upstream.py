"""Calls to the services' internal APIs: bounded timeouts, bounded retries of safe reads, request ids.

Outcomes of a call:
- 2xx: the response;
- a problem the service answered on purpose (4xx, or a 503 problem+json such as "busy"): `UpstreamProblem`,
  which the caller passes on (localized);
- the service is not there: connection refused, timeout, a 5xx that isn't a problem document, or a 404
  that isn't a problem document (the route does not exist: the service is not deployed yet):
  `UpstreamUnavailable`. The public API answers 503 for it; a portal page degrades only its own part.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from asgi_correlation_id import correlation_id
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
_RETRIABLE_STATUS = frozenset({502, 503, 504})


class UpstreamUnavailable(Exception):
    def __init__(self, service: str, detail: str) -> None:
        super().__init__(f"{service}: {detail}")
        self.service = service
        self.detail = detail


@dataclass
class UpstreamProblem(Exception):
    """A deliberate error answer of a service: its status, its problem document and useful headers."""

    service: str
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(f"{self.service}: {self.status} {self.code}")

    @property
    def code(self) -> str:
        return str(self.body.get("code") or "")


class _Retry(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


@dataclass(frozen=True, slots=True)
class CallContext:
    """What travels with every call: the caller's token, language and address, and the request id."""

    token: str | None = None
    language: str = "ru"
    client_ip: str | None = None
    user_agent: str | None = None

    def headers(self) -> dict[str, str]:
        headers = {"Accept-Language": self.language}
        request_id = correlation_id.get()
        if request_id:
            headers["X-Request-ID"] = request_id
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.client_ip:
            headers["X-Forwarded-For"] = self.client_ip
        if self.user_agent:
            headers["User-Agent"] = self.user_agent[:300]
        return headers


def _is_problem(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")
    return content_type.split(";")[0].strip() == PROBLEM_JSON


def _problem_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    body.setdefault("status", response.status_code)
    return body


class Upstream:
    """One service's internal API."""

    def __init__(
        self,
        service: str,
        base_url: str,
        *,
        timeout_s: float,
        attempts: int,
        document_timeout_s: float = 20.0,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.service = service
        self.base_url = base_url
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._client = httpx.AsyncClient(
            base_url=base_url, timeout=timeout_s, limits=limits, transport=transport
        )
        self._attempts = attempts
        self._document_timeout_s = document_timeout_s

    async def request(
        self,
        method: str,
        path: str,
        ctx: CallContext,
        *,
        params: Mapping[str, str | None] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        document: bool = False,
    ) -> httpx.Response:
        """The 2xx response; `UpstreamProblem` or `UpstreamUnavailable` otherwise. Only GETs are retried."""
        all_headers = ctx.headers()
        if headers:
            all_headers.update(headers)
        query = {k: v for k, v in (params or {}).items() if v is not None}
        content = orjson.dumps(json) if json is not None else None
        if content is not None:
            all_headers["Content-Type"] = "application/json"
        timeout = self._document_timeout_s if document else httpx.USE_CLIENT_DEFAULT
        attempts = self._attempts if method == "GET" else 1
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(attempts),
                wait=wait_exponential(multiplier=0.05, max=0.5),
                retry=retry_if_exception_type((httpx.TransportError, _Retry)),
                reraise=True,
            ):
                with attempt:
                    response = await self._client.request(
                        method, path, params=query, content=content, headers=all_headers, timeout=timeout
                    )
                    if response.status_code in _RETRIABLE_STATUS and not _is_problem(response):
                        raise _Retry(response)
        except httpx.TransportError as exc:
            log.warning("upstream unreachable", extra={"service": self.service, "error": type(exc).__name__})
            raise UpstreamUnavailable(self.service, type(exc).__name__) from exc
        except _Retry as exc:
            raise UpstreamUnavailable(self.service, f"HTTP {exc.response.status_code}") from exc
        return self._outcome(response)

    def _outcome(self, response: httpx.Response) -> httpx.Response:
        status = response.status_code
        if status < 400:
            return response
        if _is_problem(response) and (status < 500 or status == 503):
            keep = {
                k: v for k, v in response.headers.items() if k.lower() in ("retry-after", "www-authenticate")
            }
            raise UpstreamProblem(self.service, status, _problem_body(response), keep)
        if status == 404 or status == 405:
            # Not a problem document: the route does not exist (the service has not landed yet).
            raise UpstreamUnavailable(self.service, f"route missing (HTTP {status})")
        if status >= 500:
            raise UpstreamUnavailable(self.service, f"HTTP {status}")
        # Any other 4xx without a problem document (e.g. FastAPI's default 422): pass it on as a problem.
        raise UpstreamProblem(self.service, status, _problem_body(response), {})

    async def json(
        self,
        method: str,
        path: str,
        ctx: CallContext,
        *,
        params: Mapping[str, str | None] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        response = await self.request(method, path, ctx, params=params, json=json, headers=headers)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise UpstreamUnavailable(self.service, "invalid JSON") from exc

    async def get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        """An anonymous read (reference data)."""
        return await self.json("GET", path, CallContext(), params=params)

    async def aclose(self) -> None:
        await self._client.aclose()
