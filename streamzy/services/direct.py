"""Direct conversations: private rooms of kind "dm" between two to eight people.

A DM is found by its members: ``dm_key`` is the SHA-256 of the sorted member ids, unique,
so opening one with the same people twice (or concurrently) lands in the same room. It has
its own data key like any room, is never listed to anyone but its members, and has no
owner or moderators: nobody, server admins included, manages someone else's DM.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from streamzy.clock import Clock
from streamzy.services.errors import Forbidden, Invalid, NotFound
from streamzy.services.message_state import Person
from streamzy.services.rooms import RoomInfo
from streamzy.services.usernames import normalize_username
from streamzy.storage.crypto import Keyring
from streamzy.storage.db import Database
from streamzy.storage.models import Membership, Room, User

Audit = Callable[..., Awaitable[None]]
MAX_PEOPLE = 8  # the opener included
DM_PREFIX = "dm-"


@dataclass(frozen=True)
class DirectRoom:
    room: RoomInfo
    members: tuple[Person, ...]
    created: bool


def dm_key(user_ids: Sequence[int]) -> str:
    return hashlib.sha256(",".join(str(i) for i in sorted(set(user_ids))).encode()).hexdigest()


class DirectMessages:
    def __init__(self, db: Database, clock: Clock, keyring: Keyring, audit: Audit) -> None:
        self._db = db
        self._clock = clock
        self._keyring = keyring
        self._audit = audit

    async def _people(self, opener_id: int, usernames: Sequence[str]) -> list[User]:
        names = []
        for raw in usernames:
            name = normalize_username(raw)
            if name is None:
                raise NotFound("no_user", "No such active user.")
            names.append(name)
        async with self._db.unit() as db:
            found = {u.username: u for u in (await db.execute(
                select(User).where(User.username.in_(names)))).scalars()}
            opener = await db.get(User, opener_id)
        opener_is_admin = opener is not None and opener.is_admin
        people = []
        for name in dict.fromkeys(names):
            user = found.get(name)
            if user is None or not user.is_active:
                raise NotFound("no_user", f"No such active user: {name}.")
            if user.id != opener_id and not user.accepts_dms and not opener_is_admin:
                raise Forbidden("dm_not_allowed",
                                f"{name} does not take direct messages.")
            people.append(user)
        return people

    async def open(self, opener: Person, usernames: Sequence[str], info: Any) -> DirectRoom:
        """The DM between the opener and ``usernames`` (1 to 7 others), created if new."""
        if opener.id is None:
            raise Forbidden("forbidden", "Sign in first.")
        people = await self._people(opener.id, usernames)
        ids = sorted({opener.id, *(u.id for u in people)})
        if len(ids) < 2:
            raise Invalid("invalid_input", "Name at least one other person.")
        if len(ids) > MAX_PEOPLE:
            raise Invalid("too_many_people",
                          f"A direct conversation has at most {MAX_PEOPLE} people.")
        key = dm_key(ids)
        existing = await self._find(key)
        created = False
        if existing is None:
            try:
                existing = await self._create(key, ids, opener.id)
                created = True
            except IntegrityError:  # opened concurrently: the other one won
                existing = await self._find(key)
            if existing is None:
                raise NotFound("unknown_room", "No such room.")
        if created:
            await self._audit("dm_created", info, opener.id, room_id=existing.id,
                              members=len(ids))
        else:
            await self._rejoin(existing.id, ids)
        return DirectRoom(existing, await self.members(existing.id), created)

    async def _find(self, key: str) -> RoomInfo | None:
        async with self._db.unit() as db:
            room = (await db.execute(select(Room).where(Room.dm_key == key))).scalar_one_or_none()
            return RoomInfo.of(room) if room is not None else None

    async def _create(self, key: str, ids: list[int], opener_id: int) -> RoomInfo:
        async with self._db.unit() as db:
            room = Room(name=DM_PREFIX + key[:24], topic="", is_private=True,
                        created_by=opener_id, created_at=self._clock.now(), last_seq=0,
                        key_version=1, kind="dm", dm_key=key)
            db.add(room)
            await db.flush()
            await self._keyring.create_room_key(db, room.id, 1)
            for user_id in ids:
                db.add(Membership(room_id=room.id, user_id=user_id,
                                  joined_at=self._clock.now(), last_read_seq=0))
            await db.flush()
            return RoomInfo.of(room)

    async def _rejoin(self, room_id: int, ids: list[int]) -> None:
        """Someone who left a DM is back in it when it is opened again with them."""
        async with self._db.unit() as db:
            present = set((await db.execute(select(Membership.user_id).where(
                Membership.room_id == room_id))).scalars())
            for user_id in set(ids) - present:
                db.add(Membership(room_id=room_id, user_id=user_id,
                                  joined_at=self._clock.now(), last_read_seq=0))

    async def members(self, room_id: int) -> tuple[Person, ...]:
        async with self._db.unit() as db:
            rows = await db.execute(
                select(User).join(Membership, Membership.user_id == User.id)
                .where(Membership.room_id == room_id).order_by(User.display_name))
            return tuple(Person(u.id, u.username, u.display_name, u.is_bot)
                         for u in rows.scalars())
