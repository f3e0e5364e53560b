"""Reading stored messages back: history pages and catch-up after a reconnect.

Rows are opened with their room's data key as they are read; a row that does not open
(tampered, or its key is gone) comes back with ``text=None`` and is audited once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text

from streamzy.services.rooms import RoomInfo
from streamzy.storage.crypto import Keyring
from streamzy.storage.db import Database, Tx
from streamzy.storage.models import Message, User
from streamzy.storage.sqlite import read_datetime

Audit = Callable[..., Awaitable[None]]


@dataclass
class StoredMessage:
    """A message as stored (text already opened; None when it could not be)."""

    id: int
    room_id: int
    seq: int
    sender_id: int | None
    username: str
    display_name: str
    client_msg_id: str
    text: str | None
    created_at: datetime
    is_bot: bool = False


# A join's reads as plain statements, run in one snapshot by Database.read (one thread hop
# on SQLite): the room's row, then its newest page or what came after since_seq.
ROOM_ROW = text("SELECT id, name, topic, is_private, last_seq, key_version, created_at "
                "FROM rooms WHERE id = :room")
NEWEST = text("SELECT m.id, m.room_id, m.seq, m.sender_id, m.client_msg_id, m.key_version, "
              "m.ciphertext, m.created_at, u.username, u.display_name, u.is_bot "
              "FROM messages m LEFT JOIN users u ON u.id = m.sender_id "
              "WHERE m.room_id = :room ORDER BY m.seq DESC LIMIT :limit")
AFTER = text("SELECT m.id, m.room_id, m.seq, m.sender_id, m.client_msg_id, m.key_version, "
             "m.ciphertext, m.created_at, u.username, u.display_name, u.is_bot "
             "FROM messages m LEFT JOIN users u ON u.id = m.sender_id "
             "WHERE m.room_id = :room AND m.seq > :since ORDER BY m.seq LIMIT :limit")


def _join_rows(tx: Tx, room_id: int, since_seq: int | None,
               limit: int) -> tuple[Sequence[Any] | None, Sequence[Sequence[Any]]]:
    room = tx.rows(ROOM_ROW, {"room": room_id})
    if since_seq is None:
        rows = tx.rows(NEWEST, {"room": room_id, "limit": limit + 1})
    else:
        rows = tx.rows(AFTER, {"room": room_id, "since": since_seq, "limit": limit + 1})
    return (room[0] if room else None), rows


@dataclass
class JoinView:
    """What a join answers with: the room as it is now and the messages to show."""

    room: RoomInfo | None
    messages: list[StoredMessage]
    has_more: bool


class MessageHistory:
    def __init__(self, db: Database, keyring: Keyring, audit: Audit) -> None:
        self._db = db
        self._keyring = keyring
        self._audit = audit
        self._unreadable_seen: set[int] = set()

    async def _rows(self, query: Any, info: Any) -> list[StoredMessage]:
        # Plain rows through Core, not ORM entities: half the time for a page of 100.
        async with self._db.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return await self._opened(rows, info)

    async def _opened(self, rows: Sequence[Sequence[Any]], info: Any) -> list[StoredMessage]:
        """Rows in the columns of _select (and NEWEST), their text opened with the room's
        key."""
        out = []
        for (id_, room_id, seq, sender_id, client_msg_id, key_version, ciphertext, created_at,
             username, display_name, is_bot) in rows:
            text_ = await self._keyring.open(room_id, key_version, bytes(ciphertext))
            if text_ is None and id_ not in self._unreadable_seen:
                self._unreadable_seen.add(id_)
                await self._audit("message_unreadable", info, None, room_id=room_id,
                                  message_id=id_)
            out.append(StoredMessage(id_, room_id, seq, sender_id, username or "[deleted]",
                                     display_name or "[deleted]", client_msg_id, text_,
                                     read_datetime(created_at), bool(is_bot)))
        return out

    async def for_join(self, room_id: int, since_seq: int | None, limit: int,
                       info: Any) -> JoinView:
        """The room's row and its newest ``limit`` messages (or up to ``limit`` after
        ``since_seq``), read in one snapshot: a join storm's per-join database work."""
        room, rows = await self._db.read(_join_rows, room_id, since_seq, limit)
        messages = await self._opened(rows[:limit], info)
        if since_seq is None:
            messages.reverse()
        info_ = None if room is None else RoomInfo(
            int(room[0]), room[1], room[2], bool(room[3]), int(room[4]), int(room[5]),
            read_datetime(room[6]))
        return JoinView(info_, messages, len(rows) > limit)

    def _select(self) -> Any:
        return (select(Message.id, Message.room_id, Message.seq, Message.sender_id,
                       Message.client_msg_id, Message.key_version, Message.ciphertext,
                       Message.created_at, User.username, User.display_name, User.is_bot)
                .outerjoin(User, User.id == Message.sender_id))

    async def page(self, room_id: int, before_seq: int | None, limit: int,
                   info: Any) -> tuple[list[StoredMessage], bool]:
        """Up to ``limit`` messages before ``before_seq`` (newest page first), oldest first."""
        query = self._select().where(Message.room_id == room_id)
        if before_seq is not None:
            query = query.where(Message.seq < before_seq)
        rows = await self._rows(query.order_by(Message.seq.desc()).limit(limit + 1), info)
        has_more = len(rows) > limit
        return list(reversed(rows[:limit])), has_more

    async def since(self, room_id: int, since_seq: int, limit: int,
                    info: Any) -> tuple[list[StoredMessage], bool]:
        """Messages after ``since_seq`` in order (what a reconnecting client missed)."""
        query = (self._select().where(Message.room_id == room_id, Message.seq > since_seq)
                 .order_by(Message.seq).limit(limit + 1))
        rows = await self._rows(query, info)
        return rows[:limit], len(rows) > limit
