"""Signing keys: the RFC 7638 thumbprint, the JWKS, and tokens the runtime's verifier accepts."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from identity.adapters.keys import (
    KeyConfigurationError,
    LocalTokenVerifier,
    TokenSigner,
    private_key_pem,
    thumbprint,
)
from identity.settings import IdentitySettings
from service_runtime.auth import InvalidToken


def test_thumbprint_matches_rfc_8037_example() -> None:
    # RFC 8037, appendix A.3: the Ed25519 example key's RFC 7638 thumbprint.
    jwk = {"crv": "Ed25519", "kty": "OKP", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    assert thumbprint(jwk) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_rfc_8037_private_key_gives_that_kid() -> None:
    d = base64.urlsafe_b64decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=")
    signer = TokenSigner(Ed25519PrivateKey.from_private_bytes(d))
    assert signer.kid == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


async def test_issued_tokens_verify_and_claims(tmp_path: Path) -> None:
    current, previous = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    (tmp_path / "k.pem").write_bytes(private_key_pem(current))
    (tmp_path / "old.pem").write_bytes(private_key_pem(previous))
    settings = IdentitySettings(
        jwt_private_key_file=tmp_path / "k.pem", jwt_previous_public_key_files=f"{tmp_path / 'old.pem'}"
    )
    signer = TokenSigner.from_settings(settings)
    assert len(signer.jwks()["keys"]) == 2
    uid = uuid.uuid4()
    issued = signer.issue(uid, "session-1", now=1_700_000_000)
    claims = jwt.decode(issued.token, options={"verify_signature": False})
    assert claims == {
        "iss": "lk-identity",
        "aud": "lk-portal",
        "sub": str(uid),
        "sid": "session-1",
        "iat": 1_700_000_000,
        "exp": 1_700_000_300,
        "jti": issued.jti,
    }
    verifier = LocalTokenVerifier(signer, "http://unused")
    fresh = signer.issue(uid, "session-2")
    assert (await verifier.verify(fresh.token)).user_id == uid
    with pytest.raises(InvalidToken):
        await verifier.verify(issued.token)  # expired long ago


def test_settings_need_a_key_or_an_explicit_ephemeral_one(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigurationError):
        TokenSigner.from_settings(IdentitySettings(jwt_private_key_file=None))
    assert TokenSigner.from_settings(IdentitySettings(jwt_private_key_file=None, jwt_ephemeral_key=True)).kid
    with pytest.raises(ValueError, match="does not exist"):
        IdentitySettings(jwt_private_key_file=tmp_path / "missing.pem")
    (tmp_path / "rsa.pem").write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ValueError):
        TokenSigner.from_settings(IdentitySettings(jwt_private_key_file=tmp_path / "rsa.pem"))
