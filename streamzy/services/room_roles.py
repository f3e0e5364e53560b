"""Rooms run by their people: creating one, roles, invitations, leaving and archiving.

Who may create a room is a setting (``room_creation``: admins only, or everyone); the
creator becomes its owner. Owners name and remove moderators (and further owners); owners,
moderators and, in rooms of kind "room", server admins invite people; owners and admins
archive a room (read-only, still readable) and unarchive it. Leaving is open to everyone
except a room's last owner while others remain (``Rooms.leave``): they hand ownership on
first, so a room never loses its last owner by accident. The rank rules are in
``room_access``; removing someone is a kick (``moderation.Moderation.kick``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import case, func, select

from streamzy.clock import Clock, as_utc
from streamzy.services.errors import Forbidden, Invalid, NotFound, ServiceError
from streamzy.services.events import EventBus, MemberRemoved, RoomStateChanged, StandingChanged
from streamzy.services.room_access import (
    ADMIN_RANK,
    MANAGE,
    MODERATE,
    RANK,
    ROLES,
    RoomState,
    Standing,
    authorize,
    authorize_on,
    membership_of,
    rank_of,
    room_state,
    standing,
    user_named,
)
from streamzy.services.rooms import RoomInfo, Rooms
from streamzy.storage.db import Database
from streamzy.storage.models import Membership, Room, User

Audit = Callable[..., Awaitable[None]]
Role = Literal["owner", "moderator", "member"]
MEMBERS_SHOWN = 500  # the manage page lists at most this many (owners and moderators first)


@dataclass(frozen=True)
class MemberView:
    """A member as the manage page shows them."""

    user_id: int
    username: str
    display_name: str
    role: str
    muted_until: datetime | None
    joined_at: datetime
    is_bot: bool
    rank: int


@dataclass(frozen=True)
class Members:
    shown: list[MemberView]
    total: int


@dataclass(frozen=True)
class RoomSummary:
    """A room in the admins' list (direct conversations are not listed)."""

    id: int
    name: str
    topic: str
    is_private: bool
    archived: bool
    last_seq: int
    members: int


class RoomRoles:
    def __init__(self, db: Database, clock: Clock, rooms: Rooms, events: EventBus,
                 audit: Audit, audit_throttled: Audit, *,
                 room_creation: Literal["admins", "everyone"]) -> None:
        self._db = db
        self._clock = clock
        self._rooms = rooms
        self._events = events
        self._audit = audit
        self._audit_throttled = audit_throttled
        self.room_creation = room_creation

    async def denied(self, exc: ServiceError, action: str, actor_id: int, room_id: int,
                     info: Any, **detail: Any) -> None:
        """Audit a refused room action (once per window per actor and action)."""
        if isinstance(exc, Forbidden):
            await self._audit_throttled(f"room-denied:{actor_id}:{action}", "room_action_denied",
                                        info, actor_id, action=action, room_id=room_id,
                                        code=exc.code, **detail)

    # -- reads ----------------------------------------------------------------------------
    async def may_create(self, user_id: int) -> bool:
        if self.room_creation == "everyone":
            return True
        async with self._db.unit() as db:
            user = await db.get(User, user_id)
            return bool(user is not None and user.is_admin and user.is_active)

    async def standing(self, user_id: int, room_id: int) -> Standing:
        async with self._db.unit() as db:
            return await standing(db, room_id, user_id)

    async def room(self, room_id: int) -> RoomState:
        async with self._db.unit() as db:
            return await room_state(db, room_id)

    async def members(self, room_id: int) -> Members:
        """Owners, then moderators, then members, each by username."""
        order = case({"owner": 0, "moderator": 1}, value=Membership.role, else_=2)
        async with self._db.unit() as db:
            state = await room_state(db, room_id)
            total = await db.scalar(select(func.count()).select_from(Membership)
                                    .where(Membership.room_id == room_id)) or 0
            rows = await db.execute(
                select(Membership, User).join(User, User.id == Membership.user_id)
                .where(Membership.room_id == room_id)
                .order_by(order, User.username).limit(MEMBERS_SHOWN))
            shown = [MemberView(u.id, u.username, u.display_name, m.role,
                                as_utc(m.muted_until) if m.muted_until else None,
                                as_utc(m.joined_at), u.is_bot,
                                rank_of(m.role, u.is_admin and u.is_active, state.is_dm))
                     for m, u in rows]
        return Members(shown, int(total))

    async def overview(self) -> list[RoomSummary]:
        """Every room but direct conversations, for the admins' rooms page."""
        members = (select(func.count()).select_from(Membership)
                   .where(Membership.room_id == Room.id).scalar_subquery())
        async with self._db.unit() as db:
            rows = await db.execute(select(Room, members).where(Room.kind == "room")
                                    .order_by(Room.name))
            return [RoomSummary(r.id, r.name, r.topic, r.is_private, r.archived_at is not None,
                                r.last_seq, int(n or 0)) for r, n in rows]

    # -- use cases ------------------------------------------------------------------------
    async def create(self, actor_id: int, name: str, topic: str, private: bool,
                     info: Any) -> RoomInfo:
        """Create a room (if the setting allows this person); they become its owner."""
        if not await self.may_create(actor_id):
            await self._audit_throttled(f"room-denied:{actor_id}:create", "room_action_denied",
                                        info, actor_id, action="create",
                                        code="room_creation_closed")
            raise Forbidden("room_creation_closed", "Only admins may create rooms here.")
        return await self._rooms.create(actor_id, name, topic, private, info)

    async def invite(self, actor_id: int, room_id: int, username: str, info: Any) -> str:
        """Make someone a member (owners, moderators, admins); returns their username.
        Bots only by admins: a bot's rooms are what its token may read, an admin's call."""
        try:
            async with self._db.unit() as db:
                actor = await authorize(db, room_id, actor_id, MODERATE)
                invitee = await user_named(db, username)
                if invitee.is_bot and actor.rank < ADMIN_RANK:
                    raise Forbidden("bots_by_admins", "Only admins add bots to rooms.")
        except ServiceError as exc:
            await self.denied(exc, "invite", actor_id, room_id, info)
            raise
        user = await self._rooms.invite(actor_id, room_id, username, info)
        return user.username

    async def set_role(self, actor_id: int, room_id: int, target_id: int, role: str,
                       info: Any) -> None:
        """Owners (and admins) name owners and moderators, and take those roles back."""
        if role not in ROLES:
            raise Invalid("invalid_role", "Use owner, moderator or member.")
        try:
            async with self._db.unit() as db:
                actor, target = await authorize_on(db, room_id, actor_id, MANAGE, target_id)
                membership = await membership_of(db, target)
                if RANK[role] > actor.rank:
                    raise Forbidden("not_allowed", "You cannot give a role above your own.")
                previous = membership.role
                membership.role = role
                muted_until = target.muted_until
        except ServiceError as exc:
            await self.denied(exc, "set_role", actor_id, room_id, info,
                              target_user_id=target_id)
            raise
        await self._audit("room_role_changed", info, actor_id, room_id=room_id,
                          target_user_id=target_id, role=role, previous=previous)
        await self._events.publish(StandingChanged(room_id, target_id, role, muted_until))

    async def leave(self, user_id: int, room_id: int, info: Any) -> None:
        """Leave a room (refused for its last owner while others remain); every socket of
        this person leaves it too, on every process."""
        async with self._db.unit() as db:
            await room_state(db, room_id)
        await self._rooms.leave(user_id, room_id, info)
        await self._audit("room_left", info, user_id, room_id=room_id)
        await self._events.publish(MemberRemoved(room_id, user_id, "left"))

    async def archive(self, actor_id: int, room_id: int, archived: bool, info: Any) -> None:
        """Archive (read-only: no messages, edits or reactions) or unarchive a room."""
        try:
            async with self._db.unit() as db:
                await authorize(db, room_id, actor_id, MANAGE)
                room = await db.get(Room, room_id)
                if room is None:
                    raise NotFound("unknown_room", "No such room.")
                room.archived_at = (room.archived_at or self._clock.now()) if archived else None
                slow = room.slow_mode_seconds
        except ServiceError as exc:
            await self.denied(exc, "archive" if archived else "unarchive", actor_id, room_id,
                              info)
            raise
        await self._audit("room_archived" if archived else "room_unarchived", info, actor_id,
                          room_id=room_id)
        await self._events.publish(RoomStateChanged(room_id, archived, slow))
