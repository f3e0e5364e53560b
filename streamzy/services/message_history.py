"""Reading stored messages back: history pages and catch-up after a reconnect.

Rows are opened with their room's data key as they are read; a row that does not open
(tampered, or its key is gone) comes back with ``text=None`` and is audited once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text

from streamzy.services.rooms import RoomInfo
from streamzy.storage.crypto import Keyring
from streamzy.storage.db import Database, Tx
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


# Every history read as plain statements, run in one snapshot by Database.read (one
# thread hop on SQLite): pages going back, what came after since_seq, and a join's room row.
ROOM_ROW = text("SELECT id, name, topic, is_private, last_seq, key_version, created_at "
                "FROM rooms WHERE id = :room")
NEWEST = text("SELECT m.id, m.room_id, m.seq, m.sender_id, m.client_msg_id, m.key_version, "
              "m.ciphertext, m.created_at, u.username, u.display_name, u.is_bot "
              "FROM messages m LEFT JOIN users u ON u.id = m.sender_id "
              "WHERE m.room_id = :room ORDER BY m.seq DESC LIMIT :limit")
BEFORE = text("SELECT m.id, m.room_id, m.seq, m.sender_id, m.client_msg_id, m.key_version, "
              "m.ciphertext, m.created_at, u.username, u.display_name, u.is_bot "
              "FROM messages m LEFT JOIN users u ON u.id = m.sender_id "
              "WHERE m.room_id = :room AND m.seq < :before ORDER BY m.seq DESC LIMIT :limit")
AFTER = text("SELECT m.id, m.room_id, m.seq, m.sender_id, m.client_msg_id, m.key_version, "
             "m.ciphertext, m.created_at, u.username, u.display_name, u.is_bot "
             "FROM messages m LEFT JOIN users u ON u.id = m.sender_id "
             "WHERE m.room_id = :room AND m.seq > :since ORDER BY m.seq LIMIT :limit")


def _message_rows(tx: Tx, room_id: int, before_seq: int | None, since_seq: int | None,
                  limit: int) -> Sequence[Sequence[Any]]:
    """Up to ``limit`` rows: after ``since_seq`` (oldest first) when given, otherwise the
    newest before ``before_seq`` (newest first)."""
    if since_seq is not None:
        return tx.rows(AFTER, {"room": room_id, "since": since_seq, "limit": limit})
    if before_seq is not None:
        return tx.rows(BEFORE, {"room": room_id, "before": before_seq, "limit": limit})
    return tx.rows(NEWEST, {"room": room_id, "limit": limit})


def _join_rows(tx: Tx, room_id: int, since_seq: int | None,
               limit: int) -> tuple[Sequence[Any] | None, Sequence[Sequence[Any]]]:
    room = tx.rows(ROOM_ROW, {"room": room_id})
    return (room[0] if room else None), _message_rows(tx, room_id, None, since_seq, limit)


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

    async def _opened(self, rows: Sequence[Sequence[Any]], info: Any) -> list[StoredMessage]:
        """Rows in the statements' column order, their text opened with the room's key."""
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
        room, rows = await self._db.read(_join_rows, room_id, since_seq, limit + 1)
        messages = await self._opened(rows[:limit], info)
        if since_seq is None:
            messages.reverse()
        info_ = None if room is None else RoomInfo(
            int(room[0]), room[1], room[2], bool(room[3]), int(room[4]), int(room[5]),
            read_datetime(room[6]))
        return JoinView(info_, messages, len(rows) > limit)

    async def page(self, room_id: int, before_seq: int | None, limit: int,
                   info: Any) -> tuple[list[StoredMessage], bool]:
        """Up to ``limit`` messages before ``before_seq`` (newest page first), oldest first."""
        rows = await self._db.read(_message_rows, room_id, before_seq, None, limit + 1)
        messages = await self._opened(rows[:limit], info)
        messages.reverse()
        return messages, len(rows) > limit

    async def since(self, room_id: int, since_seq: int, limit: int,
                    info: Any) -> tuple[list[StoredMessage], bool]:
        """Messages after ``since_seq`` in order (what a reconnecting client missed)."""
        rows = await self._db.read(_message_rows, room_id, None, since_seq, limit + 1)
        return await self._opened(rows[:limit], info), len(rows) > limit
