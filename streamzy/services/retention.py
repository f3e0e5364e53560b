"""Retention: messages older than their room's period are purged, in small transactions.

A room's period is ``rooms.retention_days`` when set, else ``message_retention_days``
(0: kept for ever). The server runs a round every ``retention_interval_seconds``
(``streamzy/periodic.py``); ``streamzy purge`` runs one by hand (``--dry-run`` counts).
A purged message is removed with its reactions, mentions, reports and attachments. What stays behaves:
replies to a purged message show without their quote (``reply_to_id`` is no foreign
key), a join asking from an old ``since_seq`` gets what remains, and read positions move
past purged messages so they are never counted unread.

Messages are walked in sequence order and the walk stops at the first message inside the
period: sequence and time grow together (a message takes its time and its number in one
commit), so this uses the (room, seq) index and never scans a room's recent history. A
message stamped out of order by a clock step back waits for the next round.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update

from streamzy.clock import Clock, as_utc
from streamzy.services.errors import Forbidden, Invalid
from streamzy.services.room_access import MANAGE, authorize
from streamzy.services.rooms import TOMBSTONE
from streamzy.services.shredding import scrub
from streamzy.storage import system_state
from streamzy.storage.db import Database
from streamzy.storage.models import (
    Attachment,
    Membership,
    Mention,
    Message,
    Reaction,
    Report,
    Room,
    SearchTerm,
)

log = logging.getLogger("streamzy.retention")
Audit = Callable[..., Awaitable[None]]
BATCH = 500
MAX_DAYS = 36500


@dataclass
class PurgeReport:
    at: datetime
    dry_run: bool
    rooms: dict[int, int] = field(default_factory=dict)  # room id -> messages (to be) purged
    names: dict[int, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.rooms.values())


@dataclass(frozen=True)
class RoomRetention:
    days: int | None  # the room's own setting
    default: int  # the server's (0: for ever)
    effective: int  # what applies (0: for ever)


class Retention:
    def __init__(self, db: Database, clock: Clock, audit: Audit, *, default_days: int) -> None:
        self._db = db
        self._clock = clock
        self._audit = audit
        self.default_days = default_days

    def period(self, room_days: int | None) -> int:
        """The room's effective period in days (0: kept for ever)."""
        return self.default_days if room_days is None else room_days

    async def _rooms(self) -> list[tuple[int, str, int]]:
        async with self._db.unit() as db:
            rows = (await db.execute(select(Room.id, Room.name, Room.retention_days)
                                     .where(Room.kind != TOMBSTONE).order_by(Room.id))).all()
        return [(int(r), str(n), self.period(d)) for r, n, d in rows if self.period(d) > 0]

    async def purge(self, info: Any, *, dry_run: bool = False) -> PurgeReport:
        """One round over every room with a period; audited and recorded when it purged."""
        now = self._clock.now()
        report = PurgeReport(now, dry_run)
        for room_id, name, days in await self._rooms():
            cutoff = now - timedelta(days=days)
            count = await (self._count(room_id, cutoff) if dry_run
                           else self._purge_room(room_id, cutoff))
            if count:
                report.rooms[room_id] = count
                report.names[room_id] = name
        if dry_run:
            return report
        async with self._db.unit() as db:
            await system_state.write(db, system_state.PURGE, json.dumps(
                {"at": now.isoformat(), "total": report.total,
                 "rooms": {str(k): v for k, v in report.rooms.items()}}, sort_keys=True), now)
        if report.total:
            await self._audit("messages_purged", info, None, total=report.total,
                              rooms={str(k): v for k, v in report.rooms.items()})
            await scrub(self._db, ("messages", "reactions", "mentions", "reports",
                                   "attachments"))
        return report

    async def _old_prefix(self, room_id: int, cutoff: datetime,
                          after_seq: int) -> tuple[list[tuple[int, int]], bool]:
        """Up to BATCH (id, seq) of the room's oldest messages before ``cutoff``, and
        whether the walk reached a message inside the period (nothing older after it)."""
        async with self._db.unit() as db:
            rows = (await db.execute(
                select(Message.id, Message.seq, Message.created_at)
                .where(Message.room_id == room_id, Message.seq > after_seq)
                .order_by(Message.seq).limit(BATCH))).all()
        old: list[tuple[int, int]] = []
        for id_, seq, created in rows:
            if as_utc(created) >= as_utc(cutoff):
                return old, True
            old.append((int(id_), int(seq)))
        return old, len(rows) < BATCH

    async def _count(self, room_id: int, cutoff: datetime) -> int:
        total, after = 0, 0
        while True:
            old, done = await self._old_prefix(room_id, cutoff, after)
            total += len(old)
            if done or not old:
                return total
            after = old[-1][1]

    async def _purge_room(self, room_id: int, cutoff: datetime) -> int:
        total = 0
        while True:
            old, done = await self._old_prefix(room_id, cutoff, 0)
            if old:
                ids = [i for i, _ in old]
                last_seq = old[-1][1]
                async with self._db.unit() as db:
                    await db.execute(delete(Reaction).where(Reaction.message_id.in_(ids)))
                    await db.execute(delete(Attachment).where(Attachment.message_id.in_(ids)))
                    await db.execute(delete(Mention).where(Mention.message_id.in_(ids)))
                    await db.execute(delete(Report).where(Report.message_id.in_(ids)))
                    await db.execute(delete(SearchTerm).where(SearchTerm.message_id.in_(ids)))
                    await db.execute(delete(Message).where(Message.id.in_(ids)))
                    # Nobody can read them any more: they are not unread either.
                    await db.execute(update(Membership).where(
                        Membership.room_id == room_id, Membership.last_read_seq < last_seq)
                        .values(last_read_seq=last_seq))
                total += len(ids)
            if done or not old:
                return total

    async def set_room_days(self, actor_id: int, room_id: int, days: int | None,
                            info: Any) -> None:
        """A room's owners (and admins) set its period (None: the server's default)."""
        if days is not None and not 1 <= days <= MAX_DAYS:
            raise Invalid("invalid_retention",
                          f"Keep messages between 1 and {MAX_DAYS} days, or leave it empty.")
        async with self._db.unit() as db:
            actor = await authorize(db, room_id, actor_id, MANAGE)
            if actor.room.is_dm:
                raise Forbidden("not_allowed", "Direct conversations follow the server's "
                                "retention period.")
            room = await db.get(Room, room_id)
            if room is None:  # authorize found it; deleted since, in this transaction
                raise Invalid("unknown_room", "No such room.")
            previous = room.retention_days
            room.retention_days = days
        await self._audit("retention_changed", info, actor_id, room_id=room_id, days=days,
                          previous=previous)

    async def describe(self, room_id: int) -> RoomRetention:
        """The room's own period (None: the default), and the one that applies."""
        async with self._db.unit() as db:
            days = await db.scalar(select(Room.retention_days).where(Room.id == room_id))
        return RoomRetention(days, self.default_days, self.period(days))

    async def last_run(self) -> dict[str, Any] | None:
        return await system_state.read_json(self._db, system_state.PURGE)
