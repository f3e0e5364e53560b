"""What posting must know of a room, cached per process: archived or not, its slow mode, and
who in it is muted or exempt from slow mode.

Every message asks, so this is one plain read per room and expiry (not one per message),
shared by everyone posting there; the first read after an expiry is shared by the posts
waiting for it. A change applies at once: this process forgets the room when a moderation
event for it is published (``StandingChanged``, ``RoomStateChanged``, ``MemberRemoved``),
and the realtime layer has every other process forget it too (through Redis); the expiry
bounds how stale a process can be while Redis is away. Membership is not part of it:
posting checks that itself (a joined socket was checked at its join, and a removed
member's sockets leave the room).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text

from streamzy.clock import Clock
from streamzy.services.errors import NotFound
from streamzy.services.events import EventBus, MemberRemoved, RoomStateChanged, StandingChanged
from streamzy.services.room_access import MODERATE, rank_of
from streamzy.storage.db import Database, Tx
from streamzy.storage.sqlite import read_datetime

RULES_SECONDS = 5.0
MAX_ROOMS = 10_000

ROOM = text("SELECT kind, archived_at, slow_mode_seconds FROM rooms WHERE id = :room")
# Owners, moderators, admins and muted members: a few rows even in a room of thousands.
NOTABLE = text(
    "SELECT m.user_id, m.role, m.muted_until, u.is_admin AND u.is_active "
    "FROM memberships m JOIN users u ON u.id = m.user_id "
    "WHERE m.room_id = :room AND (m.role <> 'member' OR m.muted_until IS NOT NULL "
    "OR u.is_admin)")
MEMBER = text("SELECT 1 FROM memberships WHERE room_id = :room AND user_id = :user")


@dataclass(frozen=True)
class RoomRules:
    kind: str
    archived: bool
    slow_mode_seconds: int
    exempt: frozenset[int]  # may post faster than slow mode: owners, moderators, admins
    muted: Mapping[int, datetime]  # member -> muted until (some may have ended already)


def _rows(tx: Tx, room_id: int) -> tuple[Sequence[Sequence[Any]], Sequence[Sequence[Any]]]:
    return tx.rows(ROOM, {"room": room_id}), tx.rows(NOTABLE, {"room": room_id})


def is_member(tx: Tx, room_id: int, user_id: int) -> bool:
    return bool(tx.rows(MEMBER, {"room": room_id, "user": user_id}))


class RulesCache:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._rules: dict[int, tuple[float, RoomRules]] = {}
        self._loading: dict[int, tuple[int, asyncio.Task[RoomRules]]] = {}
        self._generation: dict[int, int] = {}  # bumped by forget: a load in flight is stale

    def subscribe(self, events: EventBus) -> None:
        async def changed(event: MemberRemoved | StandingChanged | RoomStateChanged) -> None:
            self.forget(event.room_id)

        for kind in (MemberRemoved, StandingChanged, RoomStateChanged):
            events.subscribe(kind, changed)

    def forget(self, room_id: int) -> None:
        """The room's rules changed (here or on another process): read them again."""
        self._rules.pop(room_id, None)
        self._generation[room_id] = self._generation.get(room_id, 0) + 1

    async def get(self, room_id: int) -> RoomRules:
        cached = self._rules.get(room_id)
        now = self._clock.now().timestamp()
        if cached is not None and now - cached[0] < RULES_SECONDS:
            return cached[1]
        generation = self._generation.get(room_id, 0)
        loading = self._loading.get(room_id)
        if loading is None or loading[0] != generation:  # none, or begun before a change
            task = asyncio.get_running_loop().create_task(self._load(room_id, now, generation))
            loading = self._loading[room_id] = (generation, task)
            task.add_done_callback(lambda done: self._loaded(room_id, done))
        return await asyncio.shield(loading[1])

    def _loaded(self, room_id: int, task: asyncio.Task[RoomRules]) -> None:
        current = self._loading.get(room_id)
        if current is not None and current[1] is task:
            del self._loading[room_id]
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter may have gone

    async def _load(self, room_id: int, now: float, generation: int) -> RoomRules:
        room, notable = await self._db.read(_rows, room_id)
        if not room:
            raise NotFound("unknown_room", "No such room.")
        kind, archived_at, slow_mode = room[0]
        kind = kind or "room"
        rules = RoomRules(
            kind, archived_at is not None, int(slow_mode or 0),
            frozenset(user for user, role, _, admin in notable
                      if kind != "dm" and rank_of(role, bool(admin), False) >= MODERATE),
            {user: read_datetime(until) for user, _, until, _ in notable if until is not None})
        if self._generation.get(room_id, 0) == generation:  # no change while reading
            if len(self._rules) >= MAX_ROOMS:
                self._rules.clear()
            self._rules[room_id] = (now, rules)
        return rules
