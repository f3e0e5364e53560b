"""A software WebAuthn authenticator for tests: an EC P-256 key, attestation "none", and
assertions signed the way a real authenticator signs them (authenticatorData followed by
the SHA-256 of clientDataJSON).

It answers the options the server sends (``create`` / ``get``) with the JSON a browser's
``PublicKeyCredential.toJSON()`` produces; keyword arguments bend one thing at a time (the
origin, the RP id, the counter, user verification, the challenge) for the refusal tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, AT = 0x01, 0x04, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftAuthenticator:
    origin: str
    rp_id: str = "127.0.0.1"
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    sign_count: int = 0
    user_handle: bytes = b""

    @property
    def id(self) -> str:
        return b64url(self.credential_id)

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                            -3: numbers.y.to_bytes(32, "big")})

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge,
                           "origin": origin or self.origin, "crossOrigin": False},
                          separators=(",", ":")).encode()

    def _auth_data(self, rp_id: str | None, flags: int, count: int,
                   attested: bytes = b"") -> bytes:
        rp_hash = hashlib.sha256((rp_id or self.rp_id).encode()).digest()
        return rp_hash + bytes([flags]) + struct.pack(">I", count) + attested

    def create(self, options: dict[str, Any], *, origin: str | None = None,
               rp_id: str | None = None, verified: bool = True) -> dict[str, Any]:
        """Answer navigator.credentials.create() options (attestation "none")."""
        self.user_handle = unb64url(options["user"]["id"])
        attested = (bytes(16) + struct.pack(">H", len(self.credential_id)) + self.credential_id
                    + self._cose_key())
        flags = UP | AT | (UV if verified else 0)
        auth_data = self._auth_data(rp_id or options["rp"].get("id"), flags, self.sign_count,
                                    attested)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        return {"id": self.id, "rawId": self.id, "type": "public-key",
                "authenticatorAttachment": "platform", "clientExtensionResults": {},
                "response": {"clientDataJSON": b64url(client_data),
                             "attestationObject": b64url(attestation),
                             "transports": ["internal", "hybrid", "bogus"]}}

    def get(self, options: dict[str, Any], *, origin: str | None = None,
            rp_id: str | None = None, verified: bool = True, count: int | None = None,
            challenge: str | None = None) -> dict[str, Any]:
        """Answer navigator.credentials.get() options; the counter goes up by one unless
        ``count`` says what to report."""
        if count is None:
            self.sign_count += 1
            count = self.sign_count
        flags = UP | (UV if verified else 0)
        auth_data = self._auth_data(rp_id or options.get("rpId"), flags, count)
        client_data = self._client_data("webauthn.get", challenge or options["challenge"],
                                        origin)
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(),
                                  ec.ECDSA(hashes.SHA256()))
        response = {"clientDataJSON": b64url(client_data),
                    "authenticatorData": b64url(auth_data), "signature": b64url(signature)}
        if self.user_handle:
            response["userHandle"] = b64url(self.user_handle)
        return {"id": self.id, "rawId": self.id, "type": "public-key",
                "authenticatorAttachment": "platform", "clientExtensionResults": {},
                "response": response}
