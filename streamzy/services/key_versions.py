"""The rule every writer of sealed content follows so that no row is ever stored under a
room key version that a rotation has retired (and may destroy):

Inside its transaction, a writer first locks the room row and reads the room's current key
version (``lock_room_version``); content sealed with any other version is refused with
``StaleKeyVersion``, and the writer seals again with the current version and retries. The
rotation destroys an old version only in a transaction that takes the same lock and finds
no row left on it, so a writer holding a stale (cached) version can never slip a row in
behind it.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from streamzy.storage.db import Tx

_LOCK_ROOM = text("UPDATE rooms SET key_version = key_version WHERE id = :room "
                  "RETURNING key_version")


class StaleKeyVersion(Exception):
    """Content was sealed with a key version that is no longer the room's current one."""

    def __init__(self, current: dict[int, int]) -> None:
        super().__init__(f"stale key version for rooms {sorted(current)}")
        self.current = current


def lock_room_version(tx: Tx, room_id: int) -> int | None:
    """Lock the room row (a write, so SQLite takes its write lock too) and return its
    current key version; None when the room is gone."""
    rows = tx.rows(_LOCK_ROOM, {"room": room_id})
    return int(rows[0][0]) if rows else None


async def lock_room_version_in(session: AsyncSession, room_id: int) -> int | None:
    """``lock_room_version`` inside an ORM unit of work."""
    value = (await session.execute(_LOCK_ROOM, {"room": room_id})).scalar_one_or_none()
    return None if value is None else int(value)
