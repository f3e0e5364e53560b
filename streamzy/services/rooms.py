"""Rooms: public and private rooms, membership, invitations."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, or_, select, text, update
from sqlalchemy.exc import IntegrityError

from streamzy.clock import Clock
from streamzy.services.errors import Conflict, Forbidden, Invalid, NotFound
from streamzy.services.room_access import active_ban, sole_owner_among_others
from streamzy.services.usernames import normalize_username
from streamzy.storage.crypto import Keyring
from streamzy.storage.db import Database, Tx
from streamzy.storage.models import Membership, Room, User

Audit = Callable[..., Awaitable[None]]
# The kind of a shredded room's row (services/shredding.py): kept so its id is never
# reused, treated everywhere as no room at all.
TOMBSTONE = "deleted"
ROOM_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}[a-z0-9]$|^[a-z0-9]$")


@dataclass(frozen=True)
class RoomInfo:
    """A room as the edges see it (never the ORM row)."""

    id: int
    name: str
    topic: str
    is_private: bool
    last_seq: int
    key_version: int
    created_at: datetime
    kind: str = "room"
    last_change: int = 0
    archived: bool = False
    slow_mode_seconds: int = 0

    @property
    def is_dm(self) -> bool:
        return self.kind == "dm"

    @classmethod
    def of(cls, room: Room) -> RoomInfo:
        return cls(room.id, room.name, room.topic, room.is_private, room.last_seq,
                   room.key_version, room.created_at, room.kind, room.last_change,
                   room.archived_at is not None, room.slow_mode_seconds)


MEMBERSHIP = text("SELECT 1 FROM memberships WHERE room_id = :room AND user_id = :user")
MEMBERS = text("SELECT user_id FROM memberships WHERE room_id = :room")


def room_members(tx: Tx, room_id: int) -> Sequence[Sequence[Any]]:
    return tx.rows(MEMBERS, {"room": room_id})


def _membership(tx: Tx, room_id: int, user_id: int) -> Sequence[Sequence[Any]]:
    return tx.rows(MEMBERSHIP, {"room": room_id, "user": user_id})


@dataclass(frozen=True)
class RoomView:
    id: int
    name: str
    topic: str
    is_private: bool
    last_seq: int
    member: bool
    last_read_seq: int
    kind: str = "room"
    title: str = ""  # a DM's other people, by name
    mentions: int = 0  # unread messages that name this person (or the room)
    archived: bool = False
    role: str | None = None  # this person's: "owner", "moderator", "member"; None outside

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "topic": self.topic,
                "private": self.is_private, "last_seq": self.last_seq, "member": self.member,
                "unread": max(0, self.last_seq - self.last_read_seq) if self.member else 0,
                "kind": self.kind, "title": self.title or f"#{self.name}",
                "mentions": self.mentions if self.member else 0,
                "archived": self.archived, "role": self.role}


# Unread mentions per room of one person: rows naming them, and @room messages, after
# their read position (not their own messages).
UNREAD_MENTIONS = text(
    "SELECT ms.room_id, "
    "(SELECT COUNT(*) FROM mentions n WHERE n.user_id = :user AND n.room_id = ms.room_id "
    "AND n.seq > ms.last_read_seq) + "
    "(SELECT COUNT(*) FROM messages m WHERE m.room_id = ms.room_id AND m.mentions_room "
    "AND m.seq > ms.last_read_seq AND (m.sender_id IS NULL OR m.sender_id <> :user)) "
    "FROM memberships ms WHERE ms.user_id = :user")
DM_PEOPLE = text(
    "SELECT ms.room_id, u.id, u.display_name FROM memberships mine "
    "JOIN rooms r ON r.id = mine.room_id AND r.kind = 'dm' "
    "JOIN memberships ms ON ms.room_id = r.id "
    "JOIN users u ON u.id = ms.user_id WHERE mine.user_id = :user ORDER BY u.display_name")


def _mentions_and_people(tx: Tx, user_id: int) -> tuple[dict[int, int], dict[int, list[str]]]:
    counts = {int(r[0]): int(r[1]) for r in tx.rows(UNREAD_MENTIONS, {"user": user_id})}
    people: dict[int, list[str]] = {}
    for room_id, member_id, name in tx.rows(DM_PEOPLE, {"user": user_id}):
        if member_id != user_id:
            people.setdefault(int(room_id), []).append(name)
    return counts, people


class Rooms:
    def __init__(self, db: Database, clock: Clock, keyring: Keyring, audit: Audit) -> None:
        self._db = db
        self._clock = clock
        self._keyring = keyring
        self._audit = audit
        # (room id, info, user id): set in wiring to shred a DM nobody is left in.
        self.after_leave: Callable[[int, Any, int], Awaitable[object]] | None = None

    async def create(self, actor_id: int, name: str, topic: str, private: bool,
                     info: Any) -> RoomInfo:
        name = name.strip().lower()
        if not ROOM_NAME.match(name):
            raise Invalid("invalid_room_name",
                          "Room names use 1-64 lowercase letters, digits, - or _.")
        if name.startswith("dm-"):  # the names direct conversations get
            raise Invalid("invalid_room_name", "Room names cannot start with dm-.")
        try:
            async with self._db.unit() as db:
                room = Room(name=name, topic=topic, is_private=private, created_by=actor_id,
                            created_at=self._clock.now(), last_seq=0, key_version=1)
                db.add(room)
                await db.flush()
                await self._keyring.create_room_key(db, room.id, 1)
                db.add(Membership(room_id=room.id, user_id=actor_id, role="owner",
                                  joined_at=self._clock.now(), last_read_seq=0))
                await db.flush()
                created = RoomInfo.of(room)
        except IntegrityError:
            raise Conflict("room_exists", "A room with that name exists.") from None
        await self._audit("room_created", info, actor_id, room_id=created.id, name=name,
                          private=private)
        return created

    async def get(self, room_id: int) -> RoomInfo | None:
        async with self._db.unit() as db:
            room = await db.get(Room, room_id)
            return RoomInfo.of(room) if room is not None and room.kind != TOMBSTONE else None

    async def by_name(self, name: str) -> RoomInfo | None:
        async with self._db.unit() as db:
            room = (await db.execute(select(Room).where(Room.name == name))).scalar_one_or_none()
            return RoomInfo.of(room) if room is not None and room.kind != TOMBSTONE else None

    async def resolve(self, ref: int | str) -> RoomInfo:
        room = await (self.get(ref) if isinstance(ref, int) else self.by_name(ref))
        if room is None:
            raise NotFound("unknown_room", "No such room.")
        return room

    async def visible(self, user_id: int) -> list[RoomView]:
        """Public rooms and the private rooms and DMs the user belongs to, with unread
        mention counts and each DM's people."""
        async with self._db.unit() as db:
            rows = (await db.execute(
                select(Room, Membership)
                .outerjoin(Membership, (Membership.room_id == Room.id)
                           & (Membership.user_id == user_id))
                .where(or_(Room.is_private.is_(False), Membership.user_id.is_not(None)))
                .order_by(Room.name))).all()
        counts, people = await self._db.read(_mentions_and_people, user_id)
        return [RoomView(r.id, r.name, r.topic, r.is_private, r.last_seq, m is not None,
                         m.last_read_seq if m else 0, r.kind,
                         ", ".join(people.get(r.id, [])) if r.kind == "dm" else "",
                         counts.get(r.id, 0), r.archived_at is not None,
                         m.role if m else None) for r, m in rows]

    async def is_member(self, user_id: int, room_id: int) -> bool:
        """One plain read (Database.read): joins and most events ask this."""
        rows = await self._db.read(_membership, room_id, user_id)
        return bool(rows)

    async def require_member(self, user_id: int, room_id: int, info: Any, *, on: str) -> None:
        """Refuse (and audit) a non-member's use of a room."""
        if not await self.is_member(user_id, room_id):
            await self._audit("room_access_denied", info, user_id, room_id=room_id, on=on)
            raise Forbidden("not_a_member", "You are not a member of this room.")

    async def join(self, user_id: int, room: RoomInfo, *, may_join_public: bool = True) -> None:
        """Join a public room, or check membership of a private one (invitation only)."""
        if await self.is_member(user_id, room.id):
            return
        if room.is_private or not may_join_public:
            raise Forbidden("not_a_member", "You are not a member of this room.")
        try:
            async with self._db.unit() as db:
                row = await db.get(Room, room.id)
                if row is None or row.kind == TOMBSTONE:  # deleted since it was cached
                    raise NotFound("unknown_room", "No such room.")
                if await active_ban(db, room.id, user_id, self._clock.now()) is not None:
                    raise Forbidden("banned", "You are banned from this room.")
                db.add(Membership(room_id=room.id, user_id=user_id,
                                  joined_at=self._clock.now(), last_read_seq=0))
        except IntegrityError:
            pass  # joined concurrently: same outcome

    async def leave(self, user_id: int, room_id: int, info: Any = None) -> None:
        """Anyone may leave, except a room's last owner while others remain: they name
        another owner first (or the room would be left without one). A direct
        conversation its last member left is shredded (``after_leave``)."""
        async with self._db.unit() as db:
            membership = await db.get(Membership, (room_id, user_id))
            if membership is None:
                return
            if membership.role == "owner" and await sole_owner_among_others(db, room_id,
                                                                            user_id):
                raise Conflict("last_owner", "You are this room's last owner: make someone "
                                             "else an owner before you leave.")
            await db.delete(membership)
        if self.after_leave is not None:
            await self.after_leave(room_id, info, user_id)

    async def invite(self, actor_id: int, room_id: int, username: str, info: Any) -> User:
        canonical = normalize_username(username)
        if canonical is None:
            raise NotFound("no_user", "No such active user.")
        async with self._db.unit() as db:
            user = (await db.execute(select(User).where(
                User.username == canonical))).scalar_one_or_none()
            if user is None or not user.is_active:
                raise NotFound("no_user", "No such active user.")
            room = await db.get(Room, room_id)
            if room is None or room.kind == TOMBSTONE:
                raise NotFound("unknown_room", "No such room.")
            if await active_ban(db, room_id, user.id, self._clock.now()) is not None:
                raise Conflict("banned", f"@{user.username} is banned from this room.")
            if await db.get(Membership, (room_id, user.id)) is None:
                db.add(Membership(room_id=room_id, user_id=user.id,
                                  joined_at=self._clock.now(), last_read_seq=0))
        await self._audit("room_invited", info, actor_id, room_id=room_id,
                          target_user_id=user.id)
        return user

    async def mark_read(self, user_id: int, room_id: int, seq: int) -> None:
        """Move the read position forward to ``seq``, clamped to the room's last message.

        Nobody can have read a message that does not exist yet: a larger ``seq`` (a bug or
        a hostile client) would otherwise hide every future message from the unread count.
        Clamped rather than refused, so a client that overshoots still marks all as read.
        One statement, so a message committed meanwhile cannot be skipped.
        """
        last = select(Room.last_seq).where(Room.id == room_id).scalar_subquery()
        target = case((last < seq, last), else_=seq)
        async with self._db.unit() as db:
            await db.execute(update(Membership).where(
                Membership.room_id == room_id, Membership.user_id == user_id,
                Membership.last_read_seq < target).values(last_read_seq=target))

    async def all_rooms(self) -> list[RoomInfo]:
        """Every room, for the admin console: never anyone's direct conversations."""
        async with self._db.unit() as db:
            return [RoomInfo.of(r) for r in (await db.execute(
                select(Room).where(Room.kind == "room").order_by(Room.name))).scalars()]
