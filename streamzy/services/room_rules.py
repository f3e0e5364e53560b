"""Who may do what in a room: moderate it (delete others' messages), or write to it now.

Moderators are the room's owners and moderators (Membership.role), and server admins in
rooms (never in someone's direct conversation). Nobody writes to an archived room; a muted
member writes nothing until the mute ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text

from streamzy.clock import Clock, as_utc
from streamzy.services.errors import Forbidden
from streamzy.services.rooms import RoomInfo
from streamzy.storage.db import Database, Tx
from streamzy.storage.sqlite import read_datetime

MODERATING_ROLES = frozenset({"owner", "moderator"})
_STANDING = text("SELECT ms.role, ms.muted_until, u.is_admin FROM users u "
                 "LEFT JOIN memberships ms ON ms.user_id = u.id AND ms.room_id = :room "
                 "WHERE u.id = :user")


def _standing(tx: Tx, room_id: int, user_id: int) -> Sequence[Any] | None:
    rows = tx.rows(_STANDING, {"room": room_id, "user": user_id})
    return rows[0] if rows else None


class RoomRules:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def can_moderate(self, user_id: int, room: RoomInfo) -> bool:
        row = await self._db.read(_standing, room.id, user_id)
        if row is None:
            return False
        role, _muted, is_admin = row
        return role in MODERATING_ROLES or (bool(is_admin) and not room.is_dm)

    async def can_write(self, user_id: int, room: RoomInfo, info: Any) -> None:
        """Refuse a message, edit or reaction in an archived room or from a muted member."""
        if room.archived:
            raise Forbidden("archived", "This room is archived: it can be read, not written.")
        row = await self._db.read(_standing, room.id, user_id)
        muted_until = None if row is None or row[1] is None else read_datetime(row[1])
        if muted_until is not None and as_utc(self._clock.now()) < as_utc(muted_until):
            raise Muted(muted_until)


class Muted(Forbidden):
    def __init__(self, until: datetime) -> None:
        super().__init__("muted", "You are muted in this room until "
                         f"{as_utc(until).strftime('%Y-%m-%d %H:%M UTC')}.")
        self.until = until
