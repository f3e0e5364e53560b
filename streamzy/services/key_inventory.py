"""Master keys and the room keys they wrap: what is configured and in use (``streamzy
keys``), re-wrapping every room key under the newest master key (the fast half of
``streamzy rotate-keys``), and retiring an old master key only once nothing needs it.

A master key is named by its id (``storage/crypto.master_key_id``), never shown itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update

from streamzy.clock import Clock
from streamzy.services.errors import Conflict, Invalid
from streamzy.storage import system_state
from streamzy.storage.crypto import Keyring
from streamzy.storage.db import Database
from streamzy.storage.models import Message, Reaction, Report, Room, RoomKey, TotpCredential

Audit = Callable[..., Awaitable[None]]
REWRAP_BATCH = 500


@dataclass(frozen=True)
class MasterKeyUse:
    key_id: str
    configured: bool
    room_keys: int  # live room keys it wraps
    totp_secrets: int = 0  # sealed TOTP secrets (storage/secret_box.py)


@dataclass(frozen=True)
class KeyStatus:
    """``streamzy keys``: configured master keys (newest first) with the room keys each
    wraps, keys found in the database but not configured, and rows still on a room key
    version older than their room's current one."""

    masters: list[MasterKeyUse]
    unwrappable: int  # live room keys no configured master key opens
    stale_rows: dict[str, int] = field(default_factory=dict)
    rotation: dict[str, Any] | None = None
    unopenable_secrets: int = 0  # sealed TOTP secrets no configured master key opens

    @property
    def newest(self) -> str:
        return self.masters[0].key_id


@dataclass(frozen=True)
class Rewrapped:
    rewrapped: int
    unwrappable: int


def _attribute(master: Any, rows: list[tuple[str | None, bytes]]) -> dict[str | None, int]:
    """Rows per master key id (None: no configured key opens them). A row without a
    recorded id (written before ids existed) is attributed by trying."""
    counts: dict[str | None, int] = {}
    for key_id, sealed in rows:
        if key_id is None:
            key_id = master.which(sealed)
        counts[key_id] = counts.get(key_id, 0) + 1
    return counts


async def bump_epoch(db: Database, clock: Clock) -> int:
    """Tell every server process that room keys changed: each drops its cached keys and
    room key versions at its next check (``settings.keyring_check_seconds``)."""
    async with db.unit() as session:
        return await system_state.bump(session, system_state.KEYRING_EPOCH, clock.now())


class KeyInventory:
    def __init__(self, db: Database, clock: Clock, keyring: Keyring, audit: Audit) -> None:
        self._db = db
        self._clock = clock
        self._keyring = keyring
        self._audit = audit

    async def _live_keys(self) -> list[tuple[int, str | None, bytes]]:
        async with self._db.unit() as db:
            rows = (await db.execute(select(RoomKey.id, RoomKey.master_key_id,
                                            RoomKey.wrapped_key)
                                     .where(RoomKey.wrapped_key.is_not(None)))).all()
        return [(int(i), m, bytes(w)) for i, m, w in rows]

    async def wrapped_by(self) -> dict[str | None, int]:
        """Live room keys per master key id (None: no configured key opens them)."""
        rows = [(key_id, wrapped) for _id, key_id, wrapped in await self._live_keys()]
        return await asyncio.to_thread(_attribute, self._keyring.master, rows)

    async def _secrets(self) -> list[tuple[int, str | None, bytes]]:
        async with self._db.unit() as db:
            rows = (await db.execute(select(TotpCredential.user_id, TotpCredential.master_key_id,
                                            TotpCredential.secret))).all()
        return [(int(u), m, bytes(s)) for u, m, s in rows]

    async def secrets_sealed_by(self) -> dict[str | None, int]:
        """Sealed TOTP secrets per master key id (None: no configured key opens them)."""
        rows = [(key_id, sealed) for _u, key_id, sealed in await self._secrets()]
        return await asyncio.to_thread(_attribute, self._keyring.master, rows)

    async def status(self) -> KeyStatus:
        counts = await self.wrapped_by()
        secrets = await self.secrets_sealed_by()
        configured = self._keyring.master.ids
        masters = [MasterKeyUse(k, True, counts.pop(k, 0), secrets.pop(k, 0))
                   for k in configured]
        unwrappable = counts.pop(None, 0)
        unopenable = secrets.pop(None, 0) + sum(n for k, n in secrets.items()
                                                  if k not in configured)
        others = sorted(set(counts) | set(secrets), key=str)
        masters += [MasterKeyUse(str(k), False, counts.get(k, 0), secrets.get(k, 0))
                    for k in others]
        stale: dict[str, int] = {}
        async with self._db.unit() as db:
            queries = {
                "messages": select(func.count()).select_from(Message)
                .join(Room, Room.id == Message.room_id)
                .where(Message.key_version != Room.key_version),
                "reactions": select(func.count()).select_from(Reaction)
                .join(Message, Message.id == Reaction.message_id)
                .join(Room, Room.id == Message.room_id)
                .where(Reaction.key_version != Room.key_version),
                "reports": select(func.count()).select_from(Report)
                .join(Room, Room.id == Report.room_id)
                .where(Report.key_version != Room.key_version),
            }
            for name, query in queries.items():
                stale[name] = int((await db.execute(query)).scalar_one())
        rotation = await system_state.read_json(self._db, system_state.ROTATION)
        return KeyStatus(masters, unwrappable, stale, rotation, unopenable)

    async def rewrap(self, progress: Callable[[int], None] | None = None) -> Rewrapped:
        """Re-encrypt every live room key not under the newest master key (its data key
        is unchanged, so nothing sealed with it moves). Each row is replaced only if it
        is still what was read (a concurrent shredding wins)."""
        master = self._keyring.master
        newest = master.newest_id
        async with self._db.unit() as db:
            todo = (await db.execute(select(RoomKey.id, RoomKey.wrapped_key).where(
                RoomKey.wrapped_key.is_not(None),
                (RoomKey.master_key_id.is_(None)) | (RoomKey.master_key_id != newest))
                .order_by(RoomKey.id))).all()
        done = bad = 0
        for start in range(0, len(todo), REWRAP_BATCH):
            chunk = [(int(i), bytes(w)) for i, w in todo[start:start + REWRAP_BATCH]]

            def rewrap_chunk(chunk: list[tuple[int, bytes]] = chunk) -> list[
                    tuple[int, bytes, bytes | None]]:
                out = []
                for key_row, wrapped in chunk:
                    out.append((key_row, wrapped, master.rewrap(wrapped)
                                if master.can_unwrap(wrapped) else None))
                return out

            moved = 0
            results = await asyncio.to_thread(rewrap_chunk)
            async with self._db.unit() as db:
                for key_row, old, new in results:
                    if new is None:
                        bad += 1
                        continue
                    result = await db.execute(
                        update(RoomKey).where(RoomKey.id == key_row,
                                              RoomKey.wrapped_key == old)
                        .values(wrapped_key=new, master_key_id=newest))
                    moved += int(result.rowcount or 0)  # type: ignore[attr-defined]
            done += moved
            if progress is not None:
                progress(len(chunk))
        if done:
            await bump_epoch(self._db, self._clock)
        return Rewrapped(done, bad)

    async def reseal_secrets(self) -> Rewrapped:
        """Re-seal every TOTP secret not under the newest master key (the secret itself
        is unchanged). Each row is replaced only if it is still what was read, so a
        concurrent enrolment or removal wins."""
        master = self._keyring.master
        newest = master.newest_id
        todo = [(u, s) for u, m, s in await self._secrets() if m != newest]

        def reseal() -> list[tuple[int, bytes, bytes | None]]:
            return [(u, s, master.rewrap(s) if master.can_unwrap(s) else None)
                    for u, s in todo]

        done = bad = 0
        async with self._db.unit() as db:
            for user_id, old, new in await asyncio.to_thread(reseal):
                if new is None:
                    bad += 1
                    continue
                result = await db.execute(
                    update(TotpCredential).where(TotpCredential.user_id == user_id,
                                                 TotpCredential.secret == old)
                    .values(secret=new, master_key_id=newest))
                done += int(result.rowcount or 0)  # type: ignore[attr-defined]
        return Rewrapped(done, bad)

    async def retire(self, key_id: str) -> int:
        """Check that master key ``key_id`` wraps nothing any more; the number of live
        room keys it wraps otherwise (Conflict). Retiring means removing it from
        STREAMZY_MESSAGE_KEYS: this says whether that is safe."""
        key_id = key_id.strip().lower()
        master = self._keyring.master
        counts = await self.wrapped_by()
        if key_id == master.newest_id:
            raise Invalid("newest_key", f"{key_id} is the newest master key: it wraps every "
                                        "new room key. Put a newer key first, run "
                                        "`streamzy rotate-keys`, then retire this one.")
        needed = counts.get(key_id, 0)
        if needed:
            raise Conflict("key_in_use", f"refused: master key {key_id} still wraps {needed} "
                                         "room key(s); run `streamzy rotate-keys` first")
        sealed = (await self.secrets_sealed_by()).get(key_id, 0)
        if sealed:
            raise Conflict("key_in_use", f"refused: master key {key_id} still seals {sealed} "
                                         "TOTP secret(s); run `streamzy rotate-keys` first")
        return 0
