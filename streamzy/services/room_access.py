"""Who may do what in a room: roles, ranks, bans, and the reads every room action starts with.

Ranks: member 1, moderator 2, owner 3. A server admin counts as 4 in rooms of kind "room"
and as nothing more than their membership in a direct conversation: nobody moderates DMs,
not even admins. Acting on someone (mute, kick, ban, a role change) needs a rank strictly
above theirs, so a moderator cannot touch the owner, another moderator or an admin, and
nobody acts on themselves. The rules live here once, for every room use case.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from streamzy.clock import as_utc
from streamzy.services.errors import Forbidden, Invalid, NotFound
from streamzy.services.usernames import normalize_username
from streamzy.storage.models import Membership, Room, RoomBan, User

ROLES = ("owner", "moderator", "member")
RANK = {"member": 1, "moderator": 2, "owner": 3}
ADMIN_RANK = 4
MODERATE = RANK["moderator"]  # mute, kick, ban, slow mode, invite
MANAGE = RANK["owner"]  # roles, archive


@dataclass(frozen=True)
class RoomState:
    """A room with what moderation needs to know of it."""

    id: int
    name: str
    topic: str
    kind: str
    is_private: bool
    archived_at: datetime | None
    slow_mode_seconds: int
    last_seq: int

    @property
    def is_dm(self) -> bool:
        return self.kind == "dm"

    @property
    def archived(self) -> bool:
        return self.archived_at is not None

    @classmethod
    def of(cls, room: Room) -> RoomState:
        return cls(room.id, room.name, room.topic, room.kind or "room", room.is_private,
                   as_utc(room.archived_at) if room.archived_at else None,
                   room.slow_mode_seconds or 0, room.last_seq)


def rank_of(role: str | None, is_admin: bool, is_dm: bool) -> int:
    if is_admin and not is_dm:
        return ADMIN_RANK
    return RANK.get(role or "", 0)


@dataclass(frozen=True)
class Standing:
    """One person's place in one room."""

    room: RoomState
    user_id: int
    username: str
    role: str | None  # None: not a member
    muted_until: datetime | None
    is_admin: bool

    @property
    def member(self) -> bool:
        return self.role is not None

    @property
    def rank(self) -> int:
        return rank_of(self.role, self.is_admin, self.room.is_dm)

    @property
    def can_moderate(self) -> bool:
        return not self.room.is_dm and self.rank >= MODERATE

    @property
    def can_manage(self) -> bool:
        return not self.room.is_dm and self.rank >= MANAGE

    def muted(self, now: datetime) -> bool:
        return self.muted_until is not None and self.muted_until > now


async def room_state(db: AsyncSession, room_id: int) -> RoomState:
    room = await db.get(Room, room_id)
    if room is None or room.kind == "deleted":  # a shredded room's tombstone
        raise NotFound("unknown_room", "No such room.")
    return RoomState.of(room)


async def standing(db: AsyncSession, room_id: int, user_id: int,
                   room: RoomState | None = None) -> Standing:
    """``user_id``'s standing in the room (NotFound for an unknown room or user)."""
    room = room or await room_state(db, room_id)
    user = await db.get(User, user_id)
    if user is None:
        raise NotFound("no_user", "No such user.")
    membership = await db.get(Membership, (room_id, user_id))
    return Standing(room, user_id, user.username,
                    membership.role if membership is not None else None,
                    as_utc(membership.muted_until) if membership and membership.muted_until
                    else None,
                    bool(user.is_admin and user.is_active))


async def authorize(db: AsyncSession, room_id: int, actor_id: int, need: int) -> Standing:
    """The actor's standing, or Forbidden saying why they may not act here."""
    actor = await standing(db, room_id, actor_id)
    if actor.room.is_dm:
        raise Forbidden("direct_conversation", "Direct conversations have no moderators.")
    if actor.rank == 0:
        raise Forbidden("not_a_member", "You are not a member of this room.")
    if actor.rank < need:
        raise Forbidden("not_allowed", "Your role in this room does not allow that.")
    return actor


async def authorize_on(db: AsyncSession, room_id: int, actor_id: int, need: int,
                       target_id: int) -> tuple[Standing, Standing]:
    """Like ``authorize``, for an action on someone: they must rank below the actor."""
    actor = await authorize(db, room_id, actor_id, need)
    if target_id == actor_id:
        raise Invalid("not_yourself", "You cannot do that to yourself.")
    target = await standing(db, room_id, target_id, actor.room)
    if target.rank >= actor.rank:
        raise Forbidden("outranked", f"@{target.username} has the same role as you or a "
                                     "higher one.")
    return actor, target


async def membership_of(db: AsyncSession, target: Standing) -> Membership:
    """The target's membership row (NotFound when they are not a member)."""
    membership = await db.get(Membership, (target.room.id, target.user_id))
    if membership is None:
        raise NotFound("target_not_member", f"@{target.username} is not a member of this room.")
    return membership


async def require_admin(db: AsyncSession, actor_id: int, code: str, message: str) -> User:
    """The acting account, refused (Forbidden ``code``) unless it is an active admin: the
    check behind every admin-only service action (deleting rooms, erasing, exporting)."""
    actor = await db.get(User, actor_id)
    if actor is None or not (actor.is_admin and actor.is_active):
        raise Forbidden(code, message)
    return actor


async def user_named(db: AsyncSession, username: str) -> User:
    """An account by its username as typed (normalised), or NotFound."""
    canonical = normalize_username(username)
    user = None if canonical is None else (await db.execute(
        select(User).where(User.username == canonical))).scalar_one_or_none()
    if user is None:
        raise NotFound("no_user", "No such user.")
    return user


async def active_ban(db: AsyncSession, room_id: int, user_id: int,
                     now: datetime) -> RoomBan | None:
    """The ban keeping ``user_id`` out of the room now, if any (an ended ban is none)."""
    ban = await db.get(RoomBan, (room_id, user_id))
    if ban is None or (ban.until is not None and as_utc(ban.until) <= now):
        return None
    return ban


async def sole_owner_among_others(db: AsyncSession, room_id: int, user_id: int) -> bool:
    """True when ``user_id`` is the room's only owner and other members remain."""
    owners = await db.scalar(select(func.count()).select_from(Membership).where(
        Membership.room_id == room_id, Membership.role == "owner",
        Membership.user_id != user_id))
    if owners:
        return False
    others = await db.scalar(select(func.count()).select_from(Membership).where(
        Membership.room_id == room_id, Membership.user_id != user_id))
    return bool(others)
