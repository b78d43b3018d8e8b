"""Access tokens: EdDSA (Ed25519) JWTs signed with identity's private key, and the public JWKS.

`kid` is the key's RFC 7638 thumbprint, so the same key always has the same id wherever it is loaded.
Key rotation: start signing with a new key and keep the old one's public half in the JWKS (setting
`IDENTITY_JWT_PREVIOUS_PUBLIC_KEY_FILES`) for at least an access token's lifetime (see the README).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from identity.settings import IdentitySettings
from service_runtime.auth import AUDIENCE, ISSUER, TokenVerifier

log = logging.getLogger(__name__)


class KeyConfigurationError(RuntimeError):
    pass


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def public_jwk(public_key: Ed25519PublicKey) -> dict[str, str]:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    base = {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}
    return {**base, "kid": thumbprint(base), "use": "sig", "alg": "EdDSA"}


def thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638: SHA-256 of the required members (crv, kty, x for OKP), sorted, without whitespace."""
    required = {k: jwk[k] for k in ("crv", "kty", "x")}
    canonical = json.dumps(required, sort_keys=True, separators=(",", ":")).encode()
    return _b64url(hashlib.sha256(canonical).digest())


def load_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyConfigurationError(f"{path}: not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    data = path.read_bytes()
    if b"PRIVATE KEY" in data:
        return load_private_key(path).public_key()
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise KeyConfigurationError(f"{path}: not an Ed25519 public key")
    return key


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass(frozen=True, slots=True)
class IssuedAccessToken:
    token: str
    expires_in: int
    jti: str


class TokenSigner:
    """Signs access tokens with the current key; publishes the current and previous public keys."""

    def __init__(
        self,
        private_key: Ed25519PrivateKey,
        *,
        previous_public_keys: list[Ed25519PublicKey] | None = None,
        ttl_s: int = 300,
    ) -> None:
        self._key = private_key
        self._current = public_jwk(private_key.public_key())
        self.kid = self._current["kid"]
        self._ttl_s = ttl_s
        published = [self._current]
        for public in previous_public_keys or []:
            jwk = public_jwk(public)
            if jwk["kid"] not in {k["kid"] for k in published}:
                published.append(jwk)
        self._jwks: dict[str, Any] = {"keys": published}

    @classmethod
    def from_settings(cls, settings: IdentitySettings) -> TokenSigner:
        if settings.jwt_private_key_file is not None:
            key = load_private_key(settings.jwt_private_key_file)
        elif settings.jwt_ephemeral_key:
            log.warning("signing access tokens with an ephemeral key: tokens die with this process")
            key = Ed25519PrivateKey.generate()
        else:
            raise KeyConfigurationError(
                "no signing key: set JWT_PRIVATE_KEY_FILE (an Ed25519 PEM), or IDENTITY_JWT_EPHEMERAL_KEY=true for tests"
            )
        previous = [load_public_key(p) for p in settings.jwt_previous_public_key_files]
        return cls(key, previous_public_keys=previous, ttl_s=settings.access_token_ttl_s)

    def jwks(self) -> dict[str, Any]:
        return copy.deepcopy(self._jwks)  # callers may not change ours

    def issue(self, user_id: uuid.UUID, session_id: str, *, now: float | None = None) -> IssuedAccessToken:
        issued_at = int(now if now is not None else time.time())
        jti = secrets.token_urlsafe(16)
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": str(user_id),
            "sid": session_id,
            "iat": issued_at,
            "exp": issued_at + self._ttl_s,
            "jti": jti,
        }
        token = jwt.encode(claims, self._key, algorithm="EdDSA", headers={"kid": self.kid, "typ": "JWT"})
        return IssuedAccessToken(token, self._ttl_s, jti)


class LocalTokenVerifier(TokenVerifier):
    """The runtime's verifier, fed from identity's own key set instead of fetching its JWKS over HTTP.

    An unknown `kid` reloads the local set (never the network), so a token signed by a foreign key is a
    clean "unknown signing key" rejection.
    """

    def __init__(self, signer: TokenSigner, jwks_url: str) -> None:
        super().__init__(jwks_url)
        self._signer = signer
        self.load_jwks(signer.jwks())

    async def _refresh(self, *, force: bool) -> None:
        self.load_jwks(self._signer.jwks())
