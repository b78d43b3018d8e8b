"""Request helpers shared by the public API and the portal: the process's parts, the client's address."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from redis.asyncio import Redis

from gateway.adapters.cache import ViewCache
from gateway.adapters.rate_limit import FailureLimiter, Limit
from gateway.adapters.revocation import RevokedSessions
from gateway.adapters.sessions import SessionStore
from gateway.application.backend import Backend
from gateway.settings import GatewaySettings
from service_runtime.auth import TokenVerifier


@dataclass
class Parts:
    """Everything a request handler needs, built once in the lifespan."""

    settings: GatewaySettings
    redis: Redis
    backend: Backend
    cache: ViewCache
    limiter: FailureLimiter
    sessions: SessionStore
    verifier: TokenVerifier
    login_limit: Limit
    link_limit: Limit
    register_limit: Limit
    revoked: RevokedSessions


def parts(request: Request) -> Parts:
    p: Parts = request.app.state.parts
    return p


def client_ip(request: Request) -> str:
    """The client's address: the socket peer, or the entry `trusted_proxy_hops` from the right of
    X-Forwarded-For when the gateway runs behind that many proxies."""
    hops = parts(request).settings.trusted_proxy_hops
    peer = request.client.host if request.client else "unknown"
    if hops == 0:
        return peer
    chain = [p.strip() for p in request.headers.get("x-forwarded-for", "").split(",") if p.strip()]
    chain.append(peer)
    return chain[-(hops + 1)] if len(chain) > hops else chain[0]
