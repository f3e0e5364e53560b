"""Moderating a room: timed mutes, kicks, bans (timed or permanent) and slow mode. (What
posting, editing and reacting check against them is ``room_rules``.)

Who may act on whom is decided by ``room_access`` (owners, moderators and, outside direct
conversations, server admins; always on someone ranked below them). Every action is
audited with who, what, whom and the reason as given; every refusal is audited once per
window. After the commit, the change is published on the event bus: a kicked or banned
member's sockets leave the room on every process (``MemberRemoved``), a muted member's
sockets are told (``StandingChanged``), the room hears of slow mode (``RoomStateChanged``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import aliased

from streamzy.clock import Clock, as_utc
from streamzy.services.errors import Forbidden, Invalid, NotFound, ServiceError
from streamzy.services.events import EventBus, MemberRemoved, RoomStateChanged, StandingChanged
from streamzy.services.room_access import (
    MODERATE,
    authorize,
    authorize_on,
    membership_of,
    user_named,
)
from streamzy.storage.db import Database
from streamzy.storage.models import Membership, Room, RoomBan, User

Audit = Callable[..., Awaitable[None]]
REASON_MAX = 200  # characters of a kick, ban or mute reason (audited as given)
MUTE_MAX_MINUTES = 30 * 24 * 60
BAN_MAX_MINUTES = 366 * 24 * 60
SLOW_MODE_MAX_SECONDS = 6 * 3600


@dataclass(frozen=True)
class BanView:
    user_id: int
    username: str
    until: datetime | None  # None: permanent
    banned_by: str
    created_at: datetime


def _until(now: datetime, minutes: int | None) -> datetime | None:
    return None if minutes is None else now + timedelta(minutes=minutes)


class Moderation:
    def __init__(self, db: Database, clock: Clock, events: EventBus, audit: Audit,
                 audit_throttled: Audit) -> None:
        self._db = db
        self._clock = clock
        self._events = events
        self._audit = audit
        self._audit_throttled = audit_throttled

    async def _denied(self, exc: ServiceError, action: str, actor_id: int, room_id: int,
                      info: Any, **detail: Any) -> None:
        if isinstance(exc, Forbidden):
            await self._audit_throttled(f"room-denied:{actor_id}:{action}", "room_action_denied",
                                        info, actor_id, action=action, room_id=room_id,
                                        code=exc.code, **detail)

    # -- actions --------------------------------------------------------------------------
    async def mute(self, actor_id: int, room_id: int, target_id: int, minutes: int,
                   reason: str, info: Any) -> datetime:
        """Mute a member for ``minutes``: they cannot post, edit or react until then."""
        if not 1 <= minutes <= MUTE_MAX_MINUTES:
            raise Invalid("invalid_duration", f"Mute for 1 to {MUTE_MAX_MINUTES} minutes.")
        until = self._clock.now() + timedelta(minutes=minutes)
        try:
            async with self._db.unit() as db:
                _, target = await authorize_on(db, room_id, actor_id, MODERATE, target_id)
                membership = await membership_of(db, target)
                membership.muted_until = until
                role = membership.role
        except ServiceError as exc:
            await self._denied(exc, "mute", actor_id, room_id, info, target_user_id=target_id)
            raise
        await self._audit("room_muted", info, actor_id, room_id=room_id,
                          target_user_id=target_id, minutes=minutes, until=until.isoformat(),
                          reason=reason[:REASON_MAX])
        await self._events.publish(StandingChanged(room_id, target_id, role, until))
        return until

    async def unmute(self, actor_id: int, room_id: int, target_id: int, info: Any) -> None:
        try:
            async with self._db.unit() as db:
                _, target = await authorize_on(db, room_id, actor_id, MODERATE, target_id)
                membership = await membership_of(db, target)
                membership.muted_until = None
                role = membership.role
        except ServiceError as exc:
            await self._denied(exc, "unmute", actor_id, room_id, info, target_user_id=target_id)
            raise
        await self._audit("room_unmuted", info, actor_id, room_id=room_id,
                          target_user_id=target_id)
        await self._events.publish(StandingChanged(room_id, target_id, role, None))

    async def kick(self, actor_id: int, room_id: int, target_id: int, reason: str,
                   info: Any) -> None:
        """Remove a member: their membership ends and their live sockets leave the room at
        once (every process). They may join a public room again; a ban keeps them out."""
        try:
            async with self._db.unit() as db:
                _, target = await authorize_on(db, room_id, actor_id, MODERATE, target_id)
                await db.delete(await membership_of(db, target))
        except ServiceError as exc:
            await self._denied(exc, "kick", actor_id, room_id, info, target_user_id=target_id)
            raise
        await self._audit("room_kicked", info, actor_id, room_id=room_id,
                          target_user_id=target_id, reason=reason[:REASON_MAX])
        await self._events.publish(MemberRemoved(room_id, target_id, "kicked"))

    async def ban(self, actor_id: int, room_id: int, target_id: int, minutes: int | None,
                  reason: str, info: Any) -> datetime | None:
        """Ban someone (a member or not) for ``minutes``, or for good with None: they are
        removed, and cannot join or be invited until the ban ends or is lifted."""
        if minutes is not None and not 1 <= minutes <= BAN_MAX_MINUTES:
            raise Invalid("invalid_duration", f"Ban for 1 to {BAN_MAX_MINUTES} minutes, "
                                                   "or for good.")
        now = self._clock.now()
        until = _until(now, minutes)
        try:
            async with self._db.unit() as db:
                _, target = await authorize_on(db, room_id, actor_id, MODERATE, target_id)
                ban = await db.get(RoomBan, (room_id, target_id))
                if ban is None:
                    db.add(RoomBan(room_id=room_id, user_id=target_id, until=until,
                                   banned_by=actor_id, created_at=now))
                else:
                    ban.until, ban.banned_by, ban.created_at = until, actor_id, now
                membership = await db.get(Membership, (room_id, target_id))
                if membership is not None:
                    await db.delete(membership)
                was_member = target.member
        except ServiceError as exc:
            await self._denied(exc, "ban", actor_id, room_id, info, target_user_id=target_id)
            raise
        await self._audit("room_banned", info, actor_id, room_id=room_id,
                          target_user_id=target_id, minutes=minutes,
                          until=until.isoformat() if until else None,
                          reason=reason[:REASON_MAX])
        if was_member:
            await self._events.publish(MemberRemoved(room_id, target_id, "banned"))
        return until

    async def ban_by_name(self, actor_id: int, room_id: int, username: str,
                          minutes: int | None, reason: str, info: Any) -> int:
        """``ban`` by username (someone who is not, or no longer, a member); their id."""
        try:
            async with self._db.unit() as db:
                await authorize(db, room_id, actor_id, MODERATE)  # before saying who exists
                target_id = (await user_named(db, username)).id
        except ServiceError as exc:
            await self._denied(exc, "ban", actor_id, room_id, info)
            raise
        await self.ban(actor_id, room_id, target_id, minutes, reason, info)
        return target_id

    async def unban(self, actor_id: int, room_id: int, target_id: int, info: Any) -> None:
        """Lift a ban (they may join or be invited again)."""
        try:
            async with self._db.unit() as db:
                await authorize(db, room_id, actor_id, MODERATE)
                ban = await db.get(RoomBan, (room_id, target_id))
                if ban is None:
                    raise NotFound("not_banned", "That person is not banned here.")
                await db.delete(ban)
        except ServiceError as exc:
            await self._denied(exc, "unban", actor_id, room_id, info, target_user_id=target_id)
            raise
        await self._audit("room_unbanned", info, actor_id, room_id=room_id,
                          target_user_id=target_id)

    async def set_slow_mode(self, actor_id: int, room_id: int, seconds: int,
                            info: Any) -> None:
        """At most one message per ``seconds`` per member (0: off); moderators exempt."""
        if not 0 <= seconds <= SLOW_MODE_MAX_SECONDS:
            raise Invalid("invalid_duration",
                               f"Slow mode takes 0 to {SLOW_MODE_MAX_SECONDS} seconds.")
        try:
            async with self._db.unit() as db:
                await authorize(db, room_id, actor_id, MODERATE)
                room = await db.get(Room, room_id)
                if room is None:
                    raise NotFound("unknown_room", "No such room.")
                previous = room.slow_mode_seconds
                room.slow_mode_seconds = seconds
                archived = room.archived_at is not None
        except ServiceError as exc:
            await self._denied(exc, "slow_mode", actor_id, room_id, info)
            raise
        await self._audit("room_slow_mode", info, actor_id, room_id=room_id, seconds=seconds,
                          previous=previous)
        await self._events.publish(RoomStateChanged(room_id, archived, seconds))

    async def bans(self, room_id: int) -> list[BanView]:
        """The bans in force, newest first."""
        now = self._clock.now()
        banner = aliased(User)
        async with self._db.unit() as db:
            rows = await db.execute(
                select(RoomBan, User.username, banner.username)
                .join(User, User.id == RoomBan.user_id)
                .outerjoin(banner, banner.id == RoomBan.banned_by)
                .where(RoomBan.room_id == room_id,
                       or_(RoomBan.until.is_(None), RoomBan.until > now))
                .order_by(RoomBan.created_at.desc()))
            return [BanView(b.user_id, name, as_utc(b.until) if b.until else None,
                            by or "[deleted]", as_utc(b.created_at)) for b, name, by in rows]
