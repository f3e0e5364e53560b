"""Crypto-shredding: deleting a room (or a direct conversation) destroys its data keys.

One transaction destroys every key of the room (``wrapped_key`` set NULL, ``destroyed_at``
set), removes its messages, reactions, mentions, reports, memberships and bans, and turns
the room row into a minimal tombstone; it bumps the keyring epoch so every process drops
what it cached. Once committed, no copy of the database taken afterwards holds the key, so
ciphertexts captured before (a stolen page, a log, an older backup restored without its
key) cannot be opened even with the master keys.

Why a tombstone instead of removing the row: a room id is never handed out again. SQLite
reuses the highest rowid after a delete, so a new room could inherit the id of the one
just shredded while another process still held its old key or room data in a cache, or
a client still showed it. The tombstone keeps nothing readable: its name becomes
``~deleted-<id>`` (a name no room can take, so the old name is free again), its topic is
cleared, it has no members, and it is archived; ``Rooms`` and ``room_access`` treat it as
no room at all. The key rows stay, empty, as the record of what was destroyed and when.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, text, update

from streamzy.clock import Clock
from streamzy.services.errors import Invalid, NotFound
from streamzy.services.events import EventBus, RoomDeleted
from streamzy.services.room_access import require_admin
from streamzy.services.rooms import TOMBSTONE
from streamzy.storage import system_state
from streamzy.storage.crypto import Keyring
from streamzy.storage.db import Database, is_sqlite
from streamzy.storage.models import (
    Attachment,
    Membership,
    Mention,
    Message,
    Reaction,
    Report,
    Room,
    RoomBan,
    RoomKey,
    SearchTerm,
)

log = logging.getLogger("streamzy.shredding")
Audit = Callable[..., Awaitable[None]]
VACUUM_SECONDS = 30.0


@dataclass(frozen=True)
class Shredded:
    room_id: int
    name: str
    kind: str
    messages: int
    members: tuple[int, ...]


async def scrub(db: Database, tables: tuple[str, ...] = ("room_keys", "messages")) -> bool:
    """Make deleted bytes leave the database files, bounded in time; True when done.

    SQLite overwrites deleted content in place (``secure_delete``), but the write-ahead log
    still holds the pages as they were until a checkpoint: a TRUNCATE checkpoint copies
    them back and empties the WAL file. PostgreSQL keeps dead tuples until VACUUM, which
    cannot run inside a transaction: it runs here on an autocommit connection. Failure
    (busy readers, a timeout) is logged and left to the next scrub or autovacuum.
    """
    try:
        async with asyncio.timeout(VACUUM_SECONDS):
            if is_sqlite(db.url):
                async with db.engine.connect() as conn:
                    row = (await conn.exec_driver_sql(
                        "PRAGMA wal_checkpoint(TRUNCATE)")).first()
                return row is None or int(row[0]) == 0
            async with db.engine.connect() as conn:
                auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
                for table in tables:
                    # nosemgrep: sql-text-built-from-strings - table names from a fixed tuple
                    await auto.execute(text(f"VACUUM {table}"))
            return True
    except Exception:
        log.warning("scrubbing deleted rows from %s did not finish", ", ".join(tables))
        return False


async def destroy_room_rows(session: Any, room_id: int, now: Any) -> tuple[int, tuple[int, ...]]:
    """Inside the caller's transaction: destroy the room's keys and remove its content and
    people; (messages removed, former member ids). The room row is left to the caller."""
    members = tuple(int(u) for u in (await session.execute(
        select(Membership.user_id).where(Membership.room_id == room_id))).scalars())
    count = int(await session.scalar(select(func.count()).select_from(Message)
                                      .where(Message.room_id == room_id)) or 0)
    await session.execute(update(RoomKey).where(RoomKey.room_id == room_id).values(
        wrapped_key=None, master_key_id=None, destroyed_at=now))
    ids = select(Message.id).where(Message.room_id == room_id)
    await session.execute(delete(Reaction).where(Reaction.message_id.in_(ids)))
    # Every file of the room, carried by a message or not yet: sealed under the keys above.
    await session.execute(delete(Attachment).where(Attachment.room_id == room_id))
    await session.execute(delete(Mention).where(Mention.room_id == room_id))
    await session.execute(delete(Report).where(Report.room_id == room_id))
    await session.execute(delete(SearchTerm).where(SearchTerm.message_id.in_(ids)))
    await session.execute(delete(Message).where(Message.room_id == room_id))
    await session.execute(delete(Membership).where(Membership.room_id == room_id))
    await session.execute(delete(RoomBan).where(RoomBan.room_id == room_id))
    return count, members


class Shredder:
    def __init__(self, db: Database, clock: Clock, keyring: Keyring, events: EventBus,
                 audit: Audit) -> None:
        self._db = db
        self._clock = clock
        self._keyring = keyring
        self._events = events
        self._audit = audit

    async def _shred(self, room_id: int, kind: str, *, only_if_empty: bool = False) -> Shredded:
        now = self._clock.now()
        async with self._db.unit() as db:
            room = (await db.execute(select(Room).where(Room.id == room_id)
                                     .with_for_update())).scalar_one_or_none()
            if room is None or room.kind != kind:
                raise NotFound("unknown_room", "No such room.")
            if only_if_empty and await db.scalar(
                    select(func.count()).select_from(Membership)
                    .where(Membership.room_id == room_id)):
                raise NotFound("unknown_room", "Someone is back in it.")
            name = room.name
            count, members = await destroy_room_rows(db, room_id, now)
            room.name = f"~deleted-{room_id}"
            room.topic = ""
            room.is_private = True
            room.kind = TOMBSTONE
            room.dm_key = None
            room.archived_at = now
            room.retention_days = None
            room.slow_mode_seconds = 0
            await system_state.bump(db, system_state.KEYRING_EPOCH, now)
        self._keyring.forget(room_id)
        return Shredded(room_id, name, kind, count, members)

    async def _after(self, done: Shredded, reason: str) -> None:
        await self._events.publish(RoomDeleted(done.room_id, done.members, reason))
        await scrub(self._db, ("room_keys", "messages", "attachments"))

    async def delete_room(self, actor_id: int | None, room_id: int, info: Any, *,
                          confirm: str | None = None) -> Shredded:
        """An admin deletes a room (never a DM through this path): its key is destroyed.
        ``confirm``, when given, must be the room's name (the console's typed check)."""
        if actor_id is not None:
            async with self._db.unit() as db:
                await require_admin(db, actor_id, "admin_only", "Only admins delete rooms.")
                room = await db.get(Room, room_id)
                if room is not None and confirm is not None and confirm != room.name:
                    raise Invalid("confirm_mismatch",
                                    "Type the room's name exactly to delete it.")
        done = await self._shred(room_id, "room")
        await self._audit("room_deleted", info, actor_id, room_id=room_id, name=done.name,
                          messages=done.messages, members=len(done.members))
        await self._after(done, "deleted")
        return done

    async def delete_direct(self, member_id: int, room_id: int, info: Any) -> Shredded:
        """A member deletes a direct conversation for everyone in it."""
        async with self._db.unit() as db:
            room = await db.get(Room, room_id)
            member = await db.get(Membership, (room_id, member_id))
        if room is None or room.kind != "dm" or member is None:
            raise NotFound("unknown_room", "No such room.")
        done = await self._shred(room_id, "dm")
        await self._audit("dm_deleted", info, member_id, room_id=room_id,
                          messages=done.messages, members=len(done.members), by="member")
        await self._after(done, "deleted")
        return done

    async def shred_if_abandoned(self, room_id: int, info: Any,
                                 user_id: int | None = None) -> Shredded | None:
        """A direct conversation its last member left is shredded (nobody can reopen it
        with the same history: opening it again starts a new one)."""
        async with self._db.unit() as db:
            room = await db.get(Room, room_id)
            left = await db.scalar(select(func.count()).select_from(Membership)
                                   .where(Membership.room_id == room_id))
        if room is None or room.kind != "dm" or left:
            return None
        try:
            done = await self._shred(room_id, "dm", only_if_empty=True)
        except NotFound:  # shredded or reopened concurrently
            return None
        await self._audit("dm_deleted", info, user_id, room_id=room_id,
                          messages=done.messages, members=0, by="last_member_left")
        await self._after(done, "deleted")
        return done
