"""`Idempotency-Key` on the public API's writes (POST, PUT, PATCH, DELETE under /api/v1).

The first response to a key is stored in Redis for 24 h, keyed by (caller, method, path, key); a repeat
gets the stored response again (with `Idempotent-Replayed: true`) and the service is not called twice.
The caller is the verified token's user, or the client address for anonymous writes. Token-issuing
calls (login, refresh) are never replayed. While the first request runs, a repeat gets 409; the same
key with a different body gets 422. Responses that didn't happen (5xx, 401, 429) are not stored, so a
retry may run again.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from redis.asyncio import Redis
from starlette.types import ASGIApp, Message, Receive, Scope, Send

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
NEVER_REPLAYED = frozenset({"/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/auth/logout"})
NOT_STORED = frozenset({401, 429})
KEPT_HEADERS = frozenset({"content-type", "location", "retry-after", "content-language", "warning"})
PENDING_TTL_S = 60

# (scope, headers) -> the caller's identity ("user:<id>" / "ip:<addr>"), or None to skip idempotency.
Principal = Callable[[Scope, dict[str, str]], Awaitable[str | None]]
# (status, code, language header) -> a complete problem response
ProblemFactory = Callable[[int, str, str | None], tuple[int, list[tuple[bytes, bytes]], bytes]]


class IdempotencyMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        redis: Callable[[], Redis],
        prefix: Callable[[], str],
        ttl_s: Callable[[], int],
        principal: Principal,
        problem: ProblemFactory,
    ) -> None:
        self.app = app
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl_s
        self._principal = principal
        self._problem = problem

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in WRITE_METHODS
            or not scope["path"].startswith("/api/v1/")
            or scope["path"] in NEVER_REPLAYED
        ):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        key = headers.get("idempotency-key")
        if key is None:
            await self.app(scope, receive, send)
            return
        lang = headers.get("accept-language")
        if not (1 <= len(key) <= 200) or not key.isprintable():
            await self._send_problem(send, 422, "invalid_idempotency_key", lang)
            return
        who = await self._principal(scope, headers)
        if who is None:
            await self.app(scope, receive, send)
            return

        body = await _read_body(receive)
        fingerprint = hashlib.sha256(body).hexdigest()
        raw_id = f"{who}\x00{scope['method']}\x00{scope['path']}\x00{key}"
        redis_key = f"{self._prefix()}idem:{hashlib.sha256(raw_id.encode()).hexdigest()}"
        redis = self._redis()

        pending = orjson.dumps({"state": "pending", "fingerprint": fingerprint})
        if not await redis.set(redis_key, pending, nx=True, ex=PENDING_TTL_S):
            stored = await redis.get(redis_key)
            if stored is not None:
                await self._answer_stored(orjson.loads(stored), fingerprint, send, lang)
                return
            # It expired in between: go on as a first request (without a reservation).

        captured: dict[str, Any] = {"status": 500, "headers": [], "body": bytearray()}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = message.get("headers", [])
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, _replay(body, receive), capture)
        except BaseException:
            await redis.delete(redis_key)
            raise
        status = int(captured["status"])
        if status >= 500 or status in NOT_STORED:
            await redis.delete(redis_key)
            return
        record = {
            "state": "done",
            "fingerprint": fingerprint,
            "status": status,
            "headers": [
                [k.decode("latin-1"), v.decode("latin-1")]
                for k, v in captured["headers"]
                if k.decode("latin-1").lower() in KEPT_HEADERS
            ],
            "body": base64.b64encode(bytes(captured["body"])).decode(),
        }
        await redis.set(redis_key, orjson.dumps(record), ex=self._ttl())

    async def _answer_stored(
        self, stored: dict[str, Any], fingerprint: str, send: Send, lang: str | None
    ) -> None:
        if stored.get("fingerprint") != fingerprint:
            await self._send_problem(send, 422, "idempotency_key_reused", lang)
            return
        if stored.get("state") != "done":
            await self._send_problem(send, 409, "idempotency_in_progress", lang, retry_after=1)
            return
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in stored["headers"]]
        headers += [(b"idempotent-replayed", b"true"), (b"cache-control", b"no-store")]
        await send({"type": "http.response.start", "status": stored["status"], "headers": headers})
        await send({"type": "http.response.body", "body": base64.b64decode(stored["body"])})

    async def _send_problem(
        self, send: Send, status: int, code: str, lang: str | None, retry_after: int | None = None
    ) -> None:
        status, headers, body = self._problem(status, code, lang)
        if retry_after is not None:
            headers = [*headers, (b"retry-after", str(retry_after).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        elif message["type"] == "http.disconnect":
            break
    return b"".join(chunks)


def _replay(body: bytes, original: Receive) -> Receive:
    """The body once, then the real channel (which blocks until the client disconnects)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await original()

    return receive
