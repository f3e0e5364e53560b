"""Each server process watches the keys: the keyring epoch (bumped by whoever changes room
keys: a rotation, a shredding) and whether every live room key still unwraps.

On a new epoch the process drops its cached keys and tells the edges (``KeysChanged``)
to drop cached room key versions. The unwrap check runs at start (a refused start names
how many rooms are affected) and again with every epoch check for /readyz; only room keys
not verified before, or changed since, are unwrapped again, in a thread.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import select

from streamzy.clock import Clock, SystemClock
from streamzy.services.events import EventBus, KeysChanged
from streamzy.storage import system_state
from streamzy.storage.crypto import Keyring
from streamzy.storage.db import Database
from streamzy.storage.models import RoomKey, TotpCredential

log = logging.getLogger("streamzy.keys")
CHECK_TIMEOUT_SECONDS = 30.0
# Between epoch changes the full unwrap check (a read of every live room key) runs at most
# this often: a database with 100,000 DMs must not be read whole every two seconds.
RECHECK_SECONDS = 60.0


class KeyWatch:
    def __init__(self, db: Database, keyring: Keyring, events: EventBus,
                 clock: Clock | None = None) -> None:
        self._db = db
        self._clock = clock or SystemClock()
        self._checked_at: float | None = None
        self._keyring = keyring
        self._events = events
        self.epoch: str | None = None
        self.unusable_rooms: int | None = None  # None: not checked yet
        # Sealed TOTP secrets no configured master key opens: their owners could not sign
        # in at all, so a start is refused and /readyz reports it (like rooms).
        self.unusable_secrets: int | None = None
        self._verified: dict[int, bytes] = {}  # room key row id -> the wrapped key that opened
        self._verified_secrets: dict[int, bytes] = {}  # user id -> the sealed TOTP that opened

    async def check_once(self) -> None:
        """One round: follow the epoch; re-check the keys when it moved, when they were
        never checked, or when the last check is RECHECK_SECONDS old (the Periodic's work)."""
        moved = await self.follow_epoch()
        now = self._clock.now().timestamp()
        if moved or self._checked_at is None or now - self._checked_at >= RECHECK_SECONDS:
            await self.check_keys()

    async def follow_epoch(self) -> bool:
        """Drop cached keys and versions when the epoch moved; True when it did."""
        found = await system_state.read(self._db, system_state.KEYRING_EPOCH)
        value = found[0] if found is not None else ""
        if self.epoch is None:  # the first look, at start: nothing cached is stale
            self.epoch = value
            return False
        if value == self.epoch:
            return False
        self.epoch = value
        self._keyring.forget()
        await self._events.publish(KeysChanged(value))
        return True

    async def check_keys(self) -> int:
        """How many rooms hold a live key that no configured master key unwraps."""
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            async with self._db.unit() as db:
                rows = [(int(i), int(r), bytes(w)) for i, r, w in (await db.execute(
                    select(RoomKey.id, RoomKey.room_id, RoomKey.wrapped_key).where(
                        RoomKey.wrapped_key.is_not(None)))).all()]
                secrets = [(int(u), bytes(s)) for u, s in (await db.execute(
                    select(TotpCredential.user_id, TotpCredential.secret))).all()]
            master = self._keyring.master
            verified = self._verified
            verified_secrets = self._verified_secrets

            def check() -> tuple[set[int], dict[int, bytes], int, dict[int, bytes]]:
                bad: set[int] = set()
                good: dict[int, bytes] = {}
                for key_row, room_id, wrapped in rows:
                    if verified.get(key_row) == wrapped or master.can_unwrap(wrapped):
                        good[key_row] = wrapped
                    else:
                        bad.add(room_id)
                bad_secrets, good_secrets = 0, {}
                for user_id, sealed in secrets:
                    if verified_secrets.get(user_id) == sealed or master.can_unwrap(sealed):
                        good_secrets[user_id] = sealed
                    else:
                        bad_secrets += 1
                return bad, good, bad_secrets, good_secrets

            bad, good, bad_secrets, good_secrets = await asyncio.to_thread(check)
        self._verified = good
        self._verified_secrets = good_secrets
        self._checked_at = self._clock.now().timestamp()
        if bad:
            log.error("%d room(s) have keys no configured master key unwraps", len(bad))
        if bad_secrets:
            log.error("%d TOTP secret(s) are sealed by no configured master key: those "
                      "accounts cannot pass their second factor", bad_secrets)
        self.unusable_rooms = len(bad)
        self.unusable_secrets = bad_secrets
        return len(bad)
