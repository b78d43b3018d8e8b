"""Verifying identity's access tokens anywhere, without calling identity per request.

Identity signs short-lived JWTs with EdDSA (Ed25519) and publishes its public keys as a JWKS. Every
service and the gateway verify tokens against that key set, fetched once and cached; an unknown `kid`
(a rotated key) triggers one refetch, at most every `refetch_floor_s`. Only EdDSA is accepted, so
`alg: none` and HMAC-with-the-public-key tricks fail.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import jwt
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

ISSUER = "lk-identity"
AUDIENCE = "lk-portal"
ALGORITHMS = ["EdDSA"]


class InvalidToken(Exception):
    pass


class KeysUnavailable(Exception):
    """Identity's JWKS could not be fetched and none is cached: a 503, not the caller's fault."""


@dataclass(frozen=True, slots=True)
class AuthenticatedUser:
    user_id: uuid.UUID
    session_id: str
    token: str


class TokenVerifier:
    def __init__(self, jwks_url: str, *, cache_s: float = 300.0, refetch_floor_s: float = 10.0) -> None:
        self._jwks_url = jwks_url
        self._cache_s = cache_s
        self._refetch_floor_s = refetch_floor_s
        self._keys: dict[str, Any] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    def load_jwks(self, jwks: dict[str, Any]) -> None:
        keys = {}
        for jwk in jwks.get("keys", []):
            if jwk.get("kid") and jwk.get("kty") == "OKP":
                keys[jwk["kid"]] = jwt.PyJWK(jwk, algorithm="EdDSA").key
        self._keys = keys
        self._fetched_at = time.monotonic()

    async def _refresh(self, *, force: bool) -> None:
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            if (force and age < self._refetch_floor_s) or (not force and age < self._cache_s and self._keys):
                return
            try:
                async with httpx.AsyncClient(timeout=3.0) as client:
                    response = await client.get(self._jwks_url)
                    response.raise_for_status()
                    self.load_jwks(response.json())
            except (httpx.HTTPError, ValueError) as exc:
                if not self._keys:
                    raise KeysUnavailable(f"identity's keys are unreachable: {type(exc).__name__}") from exc
                # Keep verifying with the keys we have; a rotated key is retried after the floor.
                self._fetched_at = time.monotonic()

    async def verify(self, token: str) -> AuthenticatedUser:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("malformed token") from exc
        if header.get("alg") not in ALGORITHMS:
            raise InvalidToken("unexpected algorithm")
        kid = str(header.get("kid", ""))
        await self._refresh(force=False)
        if kid not in self._keys:
            await self._refresh(force=True)
        key = self._keys.get(kid)
        if key is None:
            raise InvalidToken("unknown signing key")
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=ALGORITHMS,
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "sid"]},
            )
            return AuthenticatedUser(uuid.UUID(claims["sub"]), str(claims["sid"]), token)
        except (jwt.PyJWTError, ValueError) as exc:
            raise InvalidToken(str(exc)) from exc


_bearer = HTTPBearer(auto_error=False)


async def current_user(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> AuthenticatedUser:
    """FastAPI dependency: the caller, from `Authorization: Bearer`; 401 otherwise.

    The app must set `app.state.token_verifier` (a TokenVerifier) at start.
    """
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "not authenticated", headers={"WWW-Authenticate": "Bearer"})
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        return await verifier.verify(credentials.credentials)
    except InvalidToken as exc:
        raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"}) from exc
    except KeysUnavailable as exc:
        raise HTTPException(
            503, "authentication is temporarily unavailable", headers={"Retry-After": "5"}
        ) from exc


CurrentUser = Annotated[AuthenticatedUser, Depends(current_user)]
