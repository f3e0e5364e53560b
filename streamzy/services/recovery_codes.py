"""Recovery codes and TOTP codes as text: making, reading back, and the keyed hash we store.

A recovery code is 12 characters from the readable alphabet of one-time passwords (upper
case and digits without look-alikes: 32 symbols, 5 bits each, 60 bits), shown as three
groups of four (``K7QX-M3RT-9WAZ``). Typing it is forgiving: case, spaces and dashes do not
matter. The database holds only HMAC-SHA256 of (user id, code) under a key derived from
STREAMZY_SECRET_KEY with a label of its own: a stolen database alone cannot test guesses,
and a code is bound to its account.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from streamzy.services.passwords import READABLE_DIGITS, READABLE_UPPER

ALPHABET = READABLE_UPPER + READABLE_DIGITS  # 32 symbols
GROUPS = 3
GROUP_CHARS = 4
COUNT = 10
PURPOSE = b"streamzy/recovery-codes/v1"
# Longer input is refused before any work: nothing valid is this long.
MAX_INPUT_CHARS = 64
_TOTP = re.compile(r"[0-9]{6}", re.ASCII)
_RECOVERY = re.compile(f"[{ALPHABET}]{{{GROUPS * GROUP_CHARS}}}", re.ASCII)


def derive_key(secret_key: str) -> bytes:
    """The recovery-code hashing key: HKDF-SHA256 of STREAMZY_SECRET_KEY, own label."""
    if not secret_key:
        raise ValueError("recovery codes need STREAMZY_SECRET_KEY")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=PURPOSE).derive(secret_key.encode("utf-8"))


def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(GROUPS * GROUP_CHARS))
    return "-".join(raw[i:i + GROUP_CHARS] for i in range(0, len(raw), GROUP_CHARS))


def new_codes(count: int = COUNT) -> list[str]:
    codes: set[str] = set()
    while len(codes) < count:
        codes.add(new_code())
    return sorted(codes)


def code_hash(key: bytes, user_id: int, code: str) -> str:
    """The stored form of a (normalised) recovery code."""
    return hmac.new(key, f"{user_id}\x00{code}".encode("ascii"), hashlib.sha256).hexdigest()


def read_code(text: str) -> tuple[str, str]:
    """What the person typed, as (kind, normalised): kind "totp" (six ASCII digits),
    "recovery" (12 symbols of the alphabet, grouping ignored) or "malformed"."""
    if not isinstance(text, str) or len(text) > MAX_INPUT_CHARS:
        return "malformed", ""
    compact = "".join(text.split())  # "123 456" as apps show it
    if _TOTP.fullmatch(compact):
        return "totp", compact
    if not compact.isascii():  # U+017F upper-cases to "S": only ASCII input counts
        return "malformed", ""
    squeezed = compact.replace("-", "").upper()
    if _RECOVERY.fullmatch(squeezed):
        return "recovery", "-".join(squeezed[i:i + GROUP_CHARS]
                                    for i in range(0, len(squeezed), GROUP_CHARS))
    return "malformed", ""
