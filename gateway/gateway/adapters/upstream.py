"""Calls to the services' internal APIs: bounded timeouts, bounded retries of safe reads, request ids."""

from __future__ import annotations

from typing import Any

import httpx
from asgi_correlation_id import correlation_id
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential


class UpstreamUnavailable(Exception):
    def __init__(self, service: str, detail: str) -> None:
        super().__init__(f"{service}: {detail}")
        self.service = service


class Upstream:
    def __init__(self, service: str, base_url: str, *, timeout_s: float, attempts: int) -> None:
        self.service = service
        self._client = httpx.AsyncClient(base_url=base_url, timeout=timeout_s)
        self._attempts = attempts

    async def get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        headers = {"X-Request-ID": correlation_id.get() or ""}
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self._attempts),
                wait=wait_exponential(multiplier=0.05, max=0.5),
                retry=retry_if_exception_type(httpx.TransportError),
                reraise=True,
            ):
                with attempt:
                    response = await self._client.get(path, params=params, headers=headers)
        except httpx.TransportError as exc:
            raise UpstreamUnavailable(self.service, type(exc).__name__) from exc
        if response.status_code >= 500:
            raise UpstreamUnavailable(self.service, f"HTTP {response.status_code}")
        response.raise_for_status()
        return response.json()

    async def aclose(self) -> None:
        await self._client.aclose()
