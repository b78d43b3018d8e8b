"""Access tokens for services' tests: an EdDSA key pair that signs tokens as identity does (iss
"lk-identity", aud "lk-portal"), its JWKS, and a `TokenVerifier` that trusts it (no JWKS URL)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from service_runtime.auth import TokenVerifier


class SigningKeys:
    """A fresh key pair (`kid`); its tokens live `ttl_s` seconds."""

    def __init__(self, kid: str = "test-key", ttl_s: int = 3600) -> None:
        self.kid = kid
        self.ttl_s = ttl_s
        self.private = Ed25519PrivateKey.generate()

    @property
    def jwks(self) -> dict[str, Any]:
        jwk = orjson.loads(OKPAlgorithm.to_jwk(self.private.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "alg": "EdDSA", "use": "sig"}]}

    def token(self, user_id: uuid.UUID, *, sid: str = "s1") -> str:
        now = int(time.time())
        claims = {
            "iss": "lk-identity",
            "aud": "lk-portal",
            "sub": str(user_id),
            "sid": sid,
            "iat": now,
            "exp": now + self.ttl_s,
        }
        return jwt.encode(claims, self.private, algorithm="EdDSA", headers={"kid": self.kid})

    def auth(self, user_id: uuid.UUID) -> dict[str, str]:
        """The `Authorization` header of a request by `user_id`."""
        return {"Authorization": f"Bearer {self.token(user_id)}"}

    def verifier(self) -> TokenVerifier:
        """A verifier that knows this key only (set it as the app's `state.token_verifier`)."""
        verifier = TokenVerifier("http://127.0.0.1:9/not-used", cache_s=1e9)
        verifier.load_jwks(self.jwks)
        return verifier
