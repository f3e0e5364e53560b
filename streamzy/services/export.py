"""Exports: a person's own messages, or (admins) one room's, as one streamed JSON document.

Both are read in pages (keyset on id or seq) and written out piece by piece, so an export
of any size costs one page of memory. Deleted messages are left out (their text is
destroyed); a row that does not open is exported as ``"text": null, "unreadable": true``.
The export is audited (``data_exported``: scope, room, how many messages) when it starts,
so an export cut short by the client is on record too.

Who may export what: a person exports only their own messages (the caller passes the
signed-in id; there is no parameter naming another person); a room export needs an admin
(checked here again, not only at the edge) and is refused for direct conversations, which
nobody manages for others, server admins included.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import aliased

from streamzy.clock import Clock
from streamzy.services.errors import Forbidden, NotFound
from streamzy.services.room_access import require_admin
from streamzy.storage.crypto import Keyring
from streamzy.storage.db import Database
from streamzy.storage.models import Message, Room, User

Audit = Callable[..., Awaitable[None]]
PAGE = 500
FORMAT = 1


@dataclass
class Export:
    """A started export: its file name, how many messages it holds, and the JSON text in
    pieces (iterate ``chunks`` once)."""

    filename: str
    count: int
    chunks: AsyncIterator[str]


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


Parent = aliased(Message)
Sender = aliased(User)
COLUMNS = (Message.id, Message.room_id, Message.seq, Message.key_version, Message.ciphertext,
           Message.created_at, Message.edited_at, Parent.seq, Room.name, Room.kind,
           Sender.username)
LIVE = and_(Message.deleted_at.is_(None), func.length(Message.ciphertext) > 0)


def _base() -> Any:
    return (select(*COLUMNS).join(Room, Room.id == Message.room_id)
            .outerjoin(Parent, Parent.id == Message.reply_to_id)
            .outerjoin(Sender, Sender.id == Message.sender_id))


class Exports:
    def __init__(self, db: Database, keyring: Keyring, audit: Audit, clock: Clock, *,
                 page: int = PAGE) -> None:
        self._page = page
        self._db = db
        self._keyring = keyring
        self._audit = audit
        self._clock = clock

    async def for_user(self, user_id: int, info: Any, *, actor_id: int | None = None,
                       on_rows: Callable[[int], None] | None = None) -> Export:
        """The messages ``user_id`` wrote, in every room and DM (``actor_id``: who asked,
        when not the person themselves: an operator at the command line is None)."""
        async with self._db.unit() as db:
            user = await db.get(User, user_id)
            if user is None:
                raise NotFound("no_user", "No such user.")
            count = int((await db.execute(select(func.count()).select_from(Message).where(
                Message.sender_id == user_id, LIVE))).scalar_one())
        await self._audit("data_exported", info, actor_id if actor_id is not None else user_id,
                          scope="user", target_user_id=user_id, count=count)
        header = {"scope": "user", "user": user.username, "format": FORMAT,
                  "generated_at": _iso(self._clock.now())}
        query = _base().where(Message.sender_id == user_id, LIVE)
        return Export(f"streamzy-{user.username}-messages.json", count,
                      self._document(header, query, Message.id, 0, on_rows, False))

    async def for_room(self, room_id: int, info: Any, *, actor_id: int | None,
                       on_rows: Callable[[int], None] | None = None) -> Export:
        """Every message of one room with its senders (admins; ``actor_id`` None: the
        operator at the command line)."""
        async with self._db.unit() as db:
            if actor_id is not None:
                await require_admin(db, actor_id, "forbidden", "Only admins export rooms.")
            room = await db.get(Room, room_id)
            if room is None:
                raise NotFound("unknown_room", "No such room.")
            if room.kind == "dm":
                raise Forbidden("dm_not_exportable", "Direct conversations are exported by "
                                "their members only (each their own messages).")
            count = int((await db.execute(select(func.count()).select_from(Message).where(
                Message.room_id == room_id, LIVE))).scalar_one())
        await self._audit("data_exported", info, actor_id, scope="room", room_id=room_id,
                          count=count)
        header = {"scope": "room", "room": room.name, "format": FORMAT,
                  "generated_at": _iso(self._clock.now())}
        query = _base().where(Message.room_id == room_id, LIVE)
        return Export(f"streamzy-room-{room.name}.json", count,
                      self._document(header, query, Message.seq, 0, on_rows, True))

    async def _document(self, header: dict[str, Any], query: Any, key: Any, after: int,
                        on_rows: Callable[[int], None] | None,
                        senders: bool) -> AsyncIterator[str]:
        yield '{"export": ' + json.dumps(header) + ', "messages": ['
        written = 0
        while True:
            async with self._db.unit() as db:
                rows = (await db.execute(query.where(key > after).order_by(key)
                                         .limit(self._page))).all()
            if not rows:
                break
            pieces = []
            for row in rows:
                item = await self._item(row, senders)
                pieces.append(("" if written == 0 else ",") + "\n" + json.dumps(item))
                written += 1
            after = int(rows[-1].id if key is Message.id else rows[-1].seq)
            if on_rows is not None:
                on_rows(len(rows))
            yield "".join(pieces)
        yield '\n], "count": ' + str(written) + "}\n"

    async def _item(self, row: Any, senders: bool) -> dict[str, Any]:
        (_id, room_id, seq, version, ciphertext, created, edited, parent_seq, room_name,
         kind, username) = row
        text = await self._keyring.open(room_id, version, bytes(ciphertext))
        item: dict[str, Any] = {"room": room_name, "kind": kind, "seq": int(seq),
                                "at": _iso(created), "text": text,
                                "edited_at": _iso(edited),
                                "reply_to": None if parent_seq is None else int(parent_seq)}
        if senders:
            item["sender"] = username
        if text is None:
            item["unreadable"] = True
        return item
