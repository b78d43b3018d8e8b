"""Security headers on every response, and the CSRF check of the portal's forms.

- Content-Security-Policy: only this origin; no inline scripts or styles (no 'unsafe-inline'), no
  framing (frame-ancestors 'none'), forms post only here.
- X-Content-Type-Options, Referrer-Policy, X-Frame-Options, Permissions-Policy, COOP.
- Personal pages and API answers are never cached (Cache-Control: no-store), static assets are.
- CSRF: a per-session token in a hidden field of every form, compared in constant time with the
  session's on every POST; and, as a second check, a cross-site Origin (or Sec-Fetch-Site) is refused.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# A bill's side is a document of its own, shown inside the portal's page (same origin only).
FRAMEABLE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)

_COMMON = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self._hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        static = path.startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                extra = [h for h in _COMMON if h[0] not in present]
                if b"content-security-policy" not in present:
                    extra.append((b"content-security-policy", CSP.encode()))
                if b"x-frame-options" not in present:
                    extra.append((b"x-frame-options", b"DENY"))
                if b"cache-control" not in present:
                    extra.append((b"cache-control", b"public, max-age=3600" if static else b"no-store"))
                if self._hsts:
                    extra.append((b"strict-transport-security", b"max-age=31536000"))
                message["headers"] = headers + extra
            await send(message)

        await self.app(scope, receive, with_headers)


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(request: Request, public_base_url: str) -> bool:
    """False when the browser says the form came from another site (Origin / Sec-Fetch-Site)."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    allowed = {_origin_of(public_base_url), _origin_of(str(request.base_url))}
    return origin.lower() in allowed


def token_matches(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), str(given).encode())
