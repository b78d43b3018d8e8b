"""What the gateway refuses before any handler (or the Idempotency-Key middleware) reads a request.

- A body larger than `max_body_bytes`: 413, by its `Content-Length` at once, or while it streams in
  (chunked); the handlers only ever see a body that fits, so a hostile client can't make the process
  buffer megabytes.
- A write to the public API whose body isn't JSON (`Content-Type` other than `application/json` or
  `…+json`, or none at all): 415. A JSON body that isn't UTF-8 (RFC 8259 §8.1): 400.
- `/metrics` and `/readyz` through a proxy: 404. Prometheus and the kubelet call the pod directly; a
  request from the internet always comes through the ingress, which adds `X-Forwarded-For`.

Refusals are problems in the caller's language on `/api/`, the portal's error page elsewhere.
"""

from __future__ import annotations

import email.message
from collections.abc import Awaitable, Callable

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# (scope, status, code) -> the refusal (a problem on /api/, an HTML page elsewhere)
Refusal = Callable[[Scope, int, str], Awaitable[Response]]

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
OPERATIONAL_PATHS = frozenset({"/metrics", "/readyz"})
PROXY_HEADERS = frozenset({b"x-forwarded-for", b"forwarded", b"x-real-ip", b"x-forwarded-host"})


class _TooLarge(Exception):
    pass


def is_json_media_type(content_type: str) -> bool:
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


class RequestGuardMiddleware:
    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, expose_operational: bool, refuse: Refusal
    ) -> None:
        self.app = app
        self._max = max_body_bytes
        self._expose_operational = expose_operational
        self._refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name.lower(), value)
        path: str = scope["path"]

        if (
            path in OPERATIONAL_PATHS
            and not self._expose_operational
            and any(h in headers for h in PROXY_HEADERS)
        ):
            await self._answer(scope, receive, send, 404, "not_found")
            return

        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await self._answer(scope, receive, send, 400, "bad_request")
                return
            if declared > self._max:
                await self._answer(scope, receive, send, 413, "payload_too_large")
                return
        has_body = (length is not None and length != b"0") or b"transfer-encoding" in headers
        if not has_body:
            await self.app(scope, receive, send)
            return

        try:
            body = await self._read(receive)
        except _TooLarge:
            await self._answer(scope, receive, send, 413, "payload_too_large")
            return

        if path.startswith("/api/") and scope["method"] in WRITE_METHODS and body:
            content_type = headers.get(b"content-type", b"").decode("latin-1")
            if not content_type or not is_json_media_type(content_type):
                await self._answer(scope, receive, send, 415, "unsupported_media_type")
                return
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                await self._answer(scope, receive, send, 400, "invalid_encoding")
                return

        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            if message["type"] != "http.request":
                continue
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _answer(self, scope: Scope, receive: Receive, send: Send, status: int, code: str) -> None:
        response = await self._refuse(scope, status, code)
        await response(scope, receive, send)


def _replay(body: bytes, original: Receive) -> Receive:
    """The buffered body once, then the real channel (which reports the client's disconnect)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await original()

    return receive
