"""Small secrets sealed directly under the master keys (the keyring's second purpose).

Room content uses per-room data keys; a few per-user secrets (today: TOTP seeds) are sealed
with the master keys themselves, so they follow master-key rotation (``rotate-keys``
re-seals them under the newest key, ``retire-key`` counts them) and a stolen database alone
opens nothing. Each sealed value is bound to its purpose and owner: a row copied onto
another user's account does not open there.
"""

from __future__ import annotations

from streamzy.storage.crypto import MasterKeys

LABEL = "streamzy sealed secret v1"


def _bound(purpose: str, owner: int) -> bytes:
    return f"{LABEL}\x00{purpose}\x00{owner}\x00".encode()


class SecretBox:
    """seal/open per-user secrets under the configured master keys (newest seals)."""

    def __init__(self, master: MasterKeys) -> None:
        self._master = master

    @property
    def newest_id(self) -> str:
        return self._master.newest_id

    def seal(self, purpose: str, owner: int, secret: bytes) -> bytes:
        return self._master.wrap(_bound(purpose, owner) + secret)

    def open(self, purpose: str, owner: int, sealed: bytes) -> bytes | None:
        """The secret, or None when no configured key opens it or it belongs elsewhere."""
        try:
            plain = self._master.unwrap(sealed)
        except Exception:  # KeyUnavailable: a retired master key, or tampering
            return None
        prefix = _bound(purpose, owner)
        if not plain.startswith(prefix):
            return None
        return plain[len(prefix):]

    def reseal(self, sealed: bytes) -> bytes:
        """The same sealed value under the newest master key (master-key rotation)."""
        return self._master.rewrap(sealed)

    def sealed_by(self, sealed: bytes) -> str | None:
        """Which configured master key opens ``sealed`` (None: none of them)."""
        return self._master.which(sealed)
