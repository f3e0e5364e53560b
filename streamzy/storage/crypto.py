"""Envelope encryption of messages.

Master keys (``STREAMZY_MESSAGE_KEYS``, newest first) only wrap room data keys. Each room
has its own Fernet data key; a message is sealed with its room's current key and records
that key's version. Rotating a master key re-wraps the room keys (fast); destroying a
room key makes that room's content unreadable for good. Unwrapped keys live in memory only.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import struct
from collections.abc import Callable, Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from streamzy.clock import Clock
from streamzy.storage.db import Database
from streamzy.storage.models import RoomKey, TotpCredential


def token_digest(token: str) -> str:
    """What we store instead of a bearer secret (session cookie, bot token): its SHA-256.

    The secrets carry 256+ bits of randomness, so a plain hash is enough: a stolen database
    cannot be replayed, and there is nothing to brute-force.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class KeyUnavailable(Exception):
    """A key cannot be unwrapped: wrong or missing master key."""


KEY_ID_LABEL = b"streamzy master key id v1\x00"
SEAL_CHUNK = 256 * 1024  # bytes per Fernet token in DataKey.seal_bytes
_CHUNK_HEAD = struct.Struct(">II")  # chunk index, chunk count


def master_key_id(key: str | bytes) -> str:
    """A short public name for a master key: the first 16 hex digits of SHA-256 over a
    fixed label and the key's 32 bytes. It names the key in ``room_keys.master_key_id``
    and in the operator's commands; being a hash of 256 random bits, it reveals nothing."""
    raw = base64.urlsafe_b64decode(key.encode() if isinstance(key, str) else key)
    return hashlib.sha256(KEY_ID_LABEL + raw).hexdigest()[:16]


class MasterKeys:
    """The configured master keys, newest first: the newest wraps, any of them unwraps."""

    def __init__(self, keys: Sequence[str | bytes]) -> None:
        if not keys:
            raise KeyUnavailable("no master keys configured (STREAMZY_MESSAGE_KEYS)")
        singles = [Fernet(k.encode() if isinstance(k, str) else k) for k in keys]
        self.ids: tuple[str, ...] = tuple(master_key_id(k) for k in keys)
        self._single = dict(zip(self.ids, singles, strict=True))
        self._fernet = MultiFernet(singles)

    @property
    def newest_id(self) -> str:
        return self.ids[0]

    def which(self, wrapped: bytes) -> str | None:
        """The id of the configured master key that opens ``wrapped``, or None."""
        for key_id, fernet in self._single.items():
            try:
                fernet.decrypt(wrapped)
            except InvalidToken:
                continue
            return key_id
        return None

    def can_unwrap(self, wrapped: bytes) -> bool:
        try:
            self._fernet.decrypt(wrapped)
        except InvalidToken:
            return False
        return True

    def wrap(self, data_key: bytes) -> bytes:
        return self._fernet.encrypt(data_key)

    def unwrap(self, wrapped: bytes) -> bytes:
        try:
            return self._fernet.decrypt(wrapped)
        except InvalidToken:
            raise KeyUnavailable("a room key cannot be unwrapped with STREAMZY_MESSAGE_KEYS") from None

    def rewrap(self, wrapped: bytes) -> bytes:
        """Re-encrypt under the newest master key (for master-key rotation)."""
        try:
            return self._fernet.rotate(wrapped)
        except InvalidToken:
            raise KeyUnavailable("a room key cannot be unwrapped with STREAMZY_MESSAGE_KEYS") from None


class DataKey:
    """A room data key in memory: seal, open and blind without touching the database."""

    def __init__(self, raw: bytes) -> None:
        self._raw = raw
        self._fernet = Fernet(raw)

    def seal(self, text: str) -> bytes:
        return self._fernet.encrypt(text.encode("utf-8"))

    def open(self, ciphertext: bytes) -> str | None:
        try:
            return self._fernet.decrypt(ciphertext).decode("utf-8")
        except (InvalidToken, UnicodeDecodeError):
            return None

    def seal_bytes(self, data: bytes) -> bytes:
        """Seal raw bytes (attachments, megabytes; blocking: call it in a worker thread).

        Fernet tokens of SEAL_CHUNK bytes each, joined by newlines (never in a token):
        encoding one token holds the GIL for its whole length (~17 ms for 10 MiB, a stall
        of the event loop), a chunk's only for a fraction of a millisecond. Each chunk's
        plaintext starts with its index and the chunk count, so chunks cannot be dropped,
        repeated or reordered without ``open_bytes`` noticing.
        """
        count = max(1, -(-len(data) // SEAL_CHUNK))
        return b"\n".join(
            self._fernet.encrypt(_CHUNK_HEAD.pack(i, count)
                                 + data[i * SEAL_CHUNK:(i + 1) * SEAL_CHUNK])
            for i in range(count))

    def open_bytes(self, ciphertext: bytes) -> bytes | None:
        """The bytes ``seal_bytes`` sealed, or None (tampered, incomplete or wrong key)."""
        tokens = ciphertext.split(b"\n")
        parts = []
        try:
            for index, token in enumerate(tokens):
                plain = self._fernet.decrypt(token)
                if len(plain) < _CHUNK_HEAD.size or _CHUNK_HEAD.unpack_from(plain) != (
                        index, len(tokens)):
                    return None
                parts.append(plain[_CHUNK_HEAD.size:])
        except InvalidToken:
            return None
        return b"".join(parts)

    def blind(self, purpose: str, value: str) -> str:
        derived = hmac.new(self._raw, b"streamzy blind index: " + purpose.encode("utf-8"),
                           hashlib.sha256).digest()
        return hmac.new(derived, value.encode("utf-8"), hashlib.sha256).hexdigest()

    def blinder(self, purpose: str) -> Callable[[str], str]:
        """``blind`` for many values under one purpose: the purpose key is derived once
        (the search index blinds dozens of terms per message)."""
        derived = hmac.new(self._raw, b"streamzy blind index: " + purpose.encode("utf-8"),
                           hashlib.sha256).digest()

        def blind(value: str) -> str:
            return hmac.digest(derived, value.encode("utf-8"), "sha256").hex()

        return blind


class Keyring:
    """Room data keys: created wrapped, unwrapped on first use and cached in memory."""

    def __init__(self, db: Database, master: MasterKeys, clock: Clock) -> None:
        self._db = db
        self._master = master
        self._clock = clock
        self._keys: dict[tuple[int, int], Fernet | None] = {}
        self._raw: dict[tuple[int, int], bytes] = {}

    async def create_room_key(self, session: AsyncSession, room_id: int, version: int = 1) -> None:
        """Add a fresh data key for ``room_id`` inside the caller's transaction."""
        raw = Fernet.generate_key()
        session.add(RoomKey(room_id=room_id, version=version, wrapped_key=self._master.wrap(raw),
                            created_at=self._clock.now(), master_key_id=self._master.newest_id))
        self._keys[(room_id, version)] = Fernet(raw)
        self._raw[(room_id, version)] = raw

    def forget(self, room_id: int | None = None) -> None:
        """Drop cached keys of ``room_id`` (every room when None): after a rotation or a
        shredding, the next use reads the database again."""
        if room_id is None:
            self._keys.clear()
            self._raw.clear()
            return
        for key in [k for k in self._keys if k[0] == room_id]:
            self._keys.pop(key, None)
            self._raw.pop(key, None)

    async def _load(self, room_id: int, version: int) -> Fernet | None:
        key = (room_id, version)
        if key not in self._keys:
            async with self._db.unit() as db:
                row = (await db.execute(select(RoomKey).where(
                    RoomKey.room_id == room_id, RoomKey.version == version))).scalar_one_or_none()
            if row is None or row.wrapped_key is None:
                self._keys[key] = None  # destroyed or never existed: content is unreadable
            else:
                raw = self._master.unwrap(row.wrapped_key)
                self._keys[key] = Fernet(raw)
                self._raw[key] = raw
        return self._keys[key]

    async def blind(self, room_id: int, version: int, purpose: str, value: str) -> str:
        """A keyed digest of ``value`` under the room's data key (HMAC-SHA256, its key
        derived per ``purpose``): equal values compare equal within the room and key
        version, and nothing readable is stored. Raises KeyUnavailable like seal."""
        key = await self.data_key(room_id, version)
        if key is None:
            raise KeyUnavailable(f"room {room_id} has no usable key version {version}")
        return key.blind(purpose, value)

    async def load_many(self, pairs: Sequence[tuple[int, int]]) -> None:
        """Unwrap every (room, version) of ``pairs`` not cached yet, reading them in a few
        queries rather than one each (a search spans all of a person's rooms)."""
        missing = sorted({pair for pair in pairs if pair not in self._keys})
        for start in range(0, len(missing), 500):
            part = missing[start:start + 500]
            async with self._db.unit() as db:
                rows = (await db.execute(select(RoomKey.room_id, RoomKey.version,
                                                RoomKey.wrapped_key).where(
                    RoomKey.room_id.in_({room for room, _ in part})))).all()
            found = {(int(room), int(version)): wrapped for room, version, wrapped in rows}
            for pair in part:
                wrapped = found.get(pair)
                if wrapped is None:
                    self._keys[pair] = None
                    continue
                try:
                    raw = self._master.unwrap(wrapped)
                except KeyUnavailable:
                    continue  # left uncached: the single read raises as it always did
                self._keys[pair] = Fernet(raw)
                self._raw[pair] = raw

    async def data_key(self, room_id: int, version: int) -> DataKey | None:
        """One unwrapped room key version for bulk work off the event loop (the rotation
        re-encrypts thousands of rows in a thread with it); None when destroyed."""
        if await self._load(room_id, version) is None:
            return None
        return DataKey(self._raw[(room_id, version)])

    async def seal(self, room_id: int, version: int, text: str) -> bytes:
        fernet = await self._load(room_id, version)
        if fernet is None:
            raise KeyUnavailable(f"room {room_id} has no usable key version {version}")
        return fernet.encrypt(text.encode("utf-8"))

    async def open(self, room_id: int, version: int, ciphertext: bytes) -> str | None:
        """Decrypt, or None when the row is tampered with or its key is gone."""
        try:
            fernet = await self._load(room_id, version)
        except KeyUnavailable:
            return None
        if fernet is None:
            return None
        try:
            return fernet.decrypt(ciphertext).decode("utf-8")
        except (InvalidToken, UnicodeDecodeError):
            return None

    @property
    def master(self) -> MasterKeys:
        return self._master

    async def unusable_rooms(self) -> int:
        """How many rooms hold a live key (any version) that no configured master key
        opens: their messages read as unreadable and their sends fail."""
        async with self._db.unit() as db:
            rows = (await db.execute(select(RoomKey.room_id, RoomKey.wrapped_key).where(
                RoomKey.wrapped_key.is_not(None)))).all()

        def count() -> int:
            return len({room for room, wrapped in rows if not self._master.can_unwrap(wrapped)})

        return await asyncio.to_thread(count)

    async def unusable_secrets(self) -> int:
        """How many sealed per-user secrets (TOTP) no configured master key opens: those
        people could not pass their second factor at all."""
        async with self._db.unit() as db:
            rows = [bytes(s) for s in (await db.execute(select(TotpCredential.secret)))
                    .scalars()]

        def count() -> int:
            return sum(1 for sealed in rows if not self._master.can_unwrap(sealed))

        return await asyncio.to_thread(count)

    async def verify_master(self) -> None:
        """Fail at start, loudly, when the configured master keys cannot open every live
        room key (every room, every version still in use) and every sealed TOTP secret."""
        rooms, secrets = await self.unusable_rooms(), await self.unusable_secrets()
        if rooms or secrets:
            raise KeyUnavailable(unusable_message(rooms, secrets))


def unusable_message(rooms: int, secrets: int = 0) -> str:
    what = [f"{rooms} room(s) have keys"] if rooms else []
    if secrets:
        what.append(f"{secrets} TOTP secret(s) are sealed")
    return (f"{' and '.join(what) or '0 room(s) have keys'} that no key in "
            "STREAMZY_MESSAGE_KEYS can unwrap: configure the master key(s) they were "
            "wrapped with (newest first), then `streamzy rotate-keys` to move them under "
            "the newest")
