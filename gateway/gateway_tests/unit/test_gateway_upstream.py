"""How a service's answer is classified: passed-on problem, or the service is unavailable. The service
is an in-process HTTP handler (httpx.MockTransport), not a fake of any infrastructure."""

from __future__ import annotations

import httpx
import pytest

from gateway.adapters.upstream import CallContext, Upstream, UpstreamProblem, UpstreamUnavailable

PROBLEM = {"content-type": "application/problem+json"}


def upstream(handler: httpx.MockTransport, attempts: int = 3) -> Upstream:
    return Upstream("ledger", "http://ledger.test", timeout_s=1, attempts=attempts, transport=handler)


async def test_a_problem_document_is_passed_on_with_its_retry_after() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            429, json={"code": "too_many_attempts"}, headers={**PROBLEM, "Retry-After": "30"}
        )

    with pytest.raises(UpstreamProblem) as caught:
        await upstream(httpx.MockTransport(handle)).json("GET", "/x", CallContext())
    assert caught.value.status == 429 and caught.value.code == "too_many_attempts"
    assert caught.value.headers == {"retry-after": "30"}


async def test_a_missing_route_means_the_service_has_not_landed() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"detail": "Not Found"})

    with pytest.raises(UpstreamUnavailable):
        await upstream(httpx.MockTransport(handle)).json("GET", "/x", CallContext())


async def test_reads_are_retried_and_writes_are_not() -> None:
    calls: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len(calls) < 3:
            raise httpx.ConnectError("refused")
        return httpx.Response(200, json={"ok": True})

    up = upstream(httpx.MockTransport(handle))
    assert await up.json("GET", "/x", CallContext()) == {"ok": True}
    assert calls == ["GET", "GET", "GET"]
    calls.clear()
    with pytest.raises(UpstreamUnavailable):
        await up.json("POST", "/x", CallContext(), json={})
    assert calls == ["POST"]


async def test_a_bare_5xx_is_unavailability_but_a_503_problem_is_passed_on() -> None:
    def bare(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="bad gateway")

    with pytest.raises(UpstreamUnavailable):
        await upstream(httpx.MockTransport(bare), attempts=2).json("GET", "/x", CallContext())

    def busy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"code": "busy"}, headers={**PROBLEM, "Retry-After": "1"})

    with pytest.raises(UpstreamProblem) as caught:
        await upstream(httpx.MockTransport(busy)).json("POST", "/x", CallContext(), json={})
    assert caught.value.code == "busy"


async def test_the_callers_context_travels_in_headers() -> None:
    seen: dict[str, str] = {}

    def handle(request: httpx.Request) -> httpx.Response:
        seen.update(request.headers)
        return httpx.Response(204)

    ctx = CallContext(
        token="tok",
        language="kk",
        client_ip="10.1.2.3",
        user_agent="UA",
    )
    assert await upstream(httpx.MockTransport(handle)).json("DELETE", "/x", ctx) is None
    assert seen["authorization"] == "Bearer tok"
    assert seen["accept-language"] == "kk"
    assert seen["x-forwarded-for"] == "10.1.2.3"
