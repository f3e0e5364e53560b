"""Who may do what in a room right now: moderate it (delete others' messages), or write to it
(post, edit, react), and how fast (slow mode).

Moderators are the room's owners and moderators (Membership.role), and server admins in
rooms; nobody moderates a direct conversation. Nobody writes to an archived room; a muted
member writes nothing until the mute ends; in slow mode a member posts once per N seconds
(owners, moderators and admins are exempt).

Every message asks, so what a room's writing rules are (archived, slow mode, who is muted,
who is exempt) is cached per process: one plain read per room and expiry, shared by
everyone posting there, and by the posts waiting for it after an expiry. A change applies
at once: this process forgets the room when a moderation event for it is published
(``StandingChanged``, ``RoomStateChanged``, ``MemberRemoved``), the realtime layer has
every other process forget it too (through Redis), and the expiry bounds how stale a
process can be while Redis is away. Membership is not part of it: the callers check that
(a joined socket was checked at its join, and a removed member's sockets leave the room).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import text

from streamzy.clock import Clock, as_utc
from streamzy.config import Rate
from streamzy.services.errors import Forbidden, NotFound, RateLimited
from streamzy.services.events import EventBus, MemberRemoved, RoomStateChanged, StandingChanged
from streamzy.services.room_access import MODERATE, rank_of
from streamzy.services.rooms import RoomInfo
from streamzy.storage.db import Database, Tx
from streamzy.storage.sqlite import read_datetime

Audit = Callable[..., Awaitable[None]]
RULES_SECONDS = 5.0
MAX_ROOMS = 10_000

MODERATING_ROLES = frozenset({"owner", "moderator"})
_STANDING = text("SELECT ms.role, ms.muted_until, u.is_admin FROM users u "
                 "LEFT JOIN memberships ms ON ms.user_id = u.id AND ms.room_id = :room "
                 "WHERE u.id = :user")
_ROOM = text("SELECT kind, archived_at, slow_mode_seconds FROM rooms WHERE id = :room")
# Owners, moderators, admins and muted members: a few rows even in a room of thousands.
_NOTABLE = text(
    "SELECT m.user_id, m.role, m.muted_until, u.is_admin AND u.is_active "
    "FROM memberships m JOIN users u ON u.id = m.user_id "
    "WHERE m.room_id = :room AND (m.role <> 'member' OR m.muted_until IS NOT NULL "
    "OR u.is_admin)")


def _standing(tx: Tx, room_id: int, user_id: int) -> Sequence[Any] | None:
    rows = tx.rows(_STANDING, {"room": room_id, "user": user_id})
    return rows[0] if rows else None


def _rule_rows(tx: Tx, room_id: int) -> tuple[Sequence[Sequence[Any]],
                                              Sequence[Sequence[Any]]]:
    return tx.rows(_ROOM, {"room": room_id}), tx.rows(_NOTABLE, {"room": room_id})


class Muted(Forbidden):
    def __init__(self, until: datetime) -> None:
        super().__init__("muted", "You are muted in this room until "
                         f"{as_utc(until).strftime('%Y-%m-%d %H:%M UTC')}.")
        self.until = until


@dataclass(frozen=True)
class WritingRules:
    """A room's writing rules as cached."""

    kind: str
    archived: bool
    slow_mode_seconds: int
    exempt: frozenset[int]  # may post faster than slow mode: owners, moderators, admins
    muted: Mapping[int, datetime]  # member -> muted until (some may have ended already)


class Budget(Protocol):
    @property
    def allowed(self) -> bool: ...
    @property
    def retry_after(self) -> float: ...


class Limiter(Protocol):
    async def hit(self, key: str, rate: Rate, *, rule: str = "") -> Budget: ...


class RoomRules:
    def __init__(self, db: Database, clock: Clock, *, limiter: Limiter | None = None,
                 audit_throttled: Audit | None = None) -> None:
        self._db = db
        self._clock = clock
        self._limiter = limiter  # slow mode's clock (None: no slow mode, e.g. in tools)
        self._audit_throttled = audit_throttled
        self._rules: dict[int, tuple[float, WritingRules]] = {}
        self._loading: dict[int, tuple[int, asyncio.Task[WritingRules]]] = {}
        self._generation: dict[int, int] = {}  # bumped by forget: a load in flight is stale

    # -- the hooks the use cases call -------------------------------------------------------
    async def can_moderate(self, user_id: int, room: RoomInfo) -> bool:
        """Owner or moderator of the room, or a server admin; never in a DM."""
        if room.is_dm:
            return False
        row = await self._db.read(_standing, room.id, user_id)
        if row is None:
            return False
        role, _muted, is_admin = row
        return role in MODERATING_ROLES or bool(is_admin)

    async def muted_until(self, user_id: int, room: RoomInfo) -> str | None:
        """When this person's mute here ends (ISO time), or None when they are not muted:
        a page opened during a mute shows it at once."""
        until = (await self.rules(room.id)).muted.get(user_id)
        if until is None or as_utc(self._clock.now()) >= as_utc(until):
            return None
        return as_utc(until).isoformat()

    async def can_write(self, user_id: int, room: RoomInfo, info: Any) -> None:
        """Refuse a message, edit or reaction in an archived room (``archived``) or from a
        muted member (``muted``, with ``until``)."""
        await self._writable(user_id, room)

    async def _writable(self, user_id: int, room: RoomInfo) -> WritingRules:
        rules = await self.rules(room.id)
        if rules.archived:
            raise Forbidden("archived", "This room is archived: it can be read, not written.")
        until = rules.muted.get(user_id)
        if until is not None and as_utc(self._clock.now()) < as_utc(until):
            raise Muted(until)
        return rules

    async def check_can_post(self, user_id: int, room: RoomInfo, info: Any = None) -> None:
        """Posting's hook, after its membership check: ``can_write``, then slow mode
        (``slow_mode`` with ``retry_after``, like ``rate_limited``)."""
        rules = await self._writable(user_id, room)
        seconds = rules.slow_mode_seconds
        if seconds <= 0 or user_id in rules.exempt or self._limiter is None:
            return
        decision = await self._limiter.hit(f"slow:{room.id}:{user_id}", Rate(1, seconds),
                                           rule="slow_mode")
        if not decision.allowed:
            if self._audit_throttled is not None:
                await self._audit_throttled(f"slow_mode:{user_id}", "rate_limited", info,
                                            user_id, limit="slow_mode", room_id=room.id)
            raise RateLimited("slow_mode", decision.retry_after, code="slow_mode",
                              message=f"Slow mode: one message every {seconds} s here.")

    # -- the cache ----------------------------------------------------------------------------
    def subscribe(self, events: EventBus) -> None:
        async def changed(event: MemberRemoved | StandingChanged | RoomStateChanged) -> None:
            self.forget(event.room_id)

        for kind in (MemberRemoved, StandingChanged, RoomStateChanged):
            events.subscribe(kind, changed)

    def forget(self, room_id: int) -> None:
        """The room's rules changed (here or on another process): read them again."""
        self._rules.pop(room_id, None)
        self._generation[room_id] = self._generation.get(room_id, 0) + 1

    async def rules(self, room_id: int) -> WritingRules:
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

    def _loaded(self, room_id: int, task: asyncio.Task[WritingRules]) -> None:
        current = self._loading.get(room_id)
        if current is not None and current[1] is task:
            del self._loading[room_id]
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter may have gone

    async def _load(self, room_id: int, now: float, generation: int) -> WritingRules:
        room, notable = await self._db.read(_rule_rows, room_id)
        if not room:
            raise NotFound("unknown_room", "No such room.")
        kind, archived_at, slow_mode = room[0]
        kind = kind or "room"
        rules = WritingRules(
            kind, archived_at is not None, int(slow_mode or 0),
            frozenset(user for user, role, _, admin in notable
                      if kind != "dm" and rank_of(role, bool(admin), False) >= MODERATE),
            {user: read_datetime(until) for user, _, until, _ in notable if until is not None})
        if self._generation.get(room_id, 0) == generation:  # no change while reading
            if len(self._rules) >= MAX_ROOMS:
                self._rules.clear()
            self._rules[room_id] = (now, rules)
        return rules
