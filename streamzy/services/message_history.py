"""Reading stored messages back: history pages and catch-up after a reconnect.

Rows are opened with their room's data key as they are read (services/message_state.py);
a row that does not open (tampered, or its key is gone) comes back with ``text=None`` and
is audited once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from streamzy.services.attachment_views import attachment_rows
from streamzy.services.message_state import (
    MessageReader,
    StoredMessage,
    extras,
    message_query,
    one_message,
)
from streamzy.services.rooms import RoomInfo
from streamzy.storage.crypto import Keyring
from streamzy.storage.db import Database, Tx
from streamzy.storage.sqlite import read_datetime

Audit = Callable[..., Awaitable[None]]


# Every history read as plain statements, run in one snapshot by Database.read (one
# thread hop on SQLite): pages going back, what came after since_seq, and a join's room row.
ROOM_ROW = text("SELECT id, name, topic, is_private, last_seq, key_version, created_at, "
                "kind, last_change, archived_at, slow_mode_seconds FROM rooms WHERE id = :room")
NEWEST = message_query("WHERE m.room_id = :room ORDER BY m.seq DESC LIMIT :limit")
BEFORE = message_query("WHERE m.room_id = :room AND m.seq < :before "
                       "ORDER BY m.seq DESC LIMIT :limit")
AFTER = message_query("WHERE m.room_id = :room AND m.seq > :since ORDER BY m.seq LIMIT :limit")
# What changed (edits, deletes, reactions) after a client's change cursor: current state.
CHANGED = message_query("WHERE m.room_id = :room AND m.change_seq > :since "
                        "ORDER BY m.change_seq LIMIT :limit")


Rows = Sequence[Sequence[Any]]
Found = tuple[Rows, Rows, Rows, Rows]  # messages, mentions, reactions, attachments


def _message_rows(tx: Tx, room_id: int, before_seq: int | None, since_seq: int | None,
                  limit: int) -> Found:
    """Up to ``limit`` rows: after ``since_seq`` (oldest first) when given, otherwise the
    newest before ``before_seq`` (newest first); with their mentions and reactions."""
    if since_seq is not None:
        rows = tx.rows(AFTER, {"room": room_id, "since": since_seq, "limit": limit})
    elif before_seq is not None:
        rows = tx.rows(BEFORE, {"room": room_id, "before": before_seq, "limit": limit})
    else:
        rows = tx.rows(NEWEST, {"room": room_id, "limit": limit})
    return (rows, *extras(tx, rows), attachment_rows(tx, rows))


def _changed_rows(tx: Tx, room_id: int, since_change: int, limit: int) -> Found:
    rows = tx.rows(CHANGED, {"room": room_id, "since": since_change, "limit": limit})
    return (rows, *extras(tx, rows), attachment_rows(tx, rows))


def _one_rows(tx: Tx, room_id: int, message_id: int) -> Found:
    rows, mentions, reactions = one_message(tx, room_id, message_id)
    return rows, mentions, reactions, attachment_rows(tx, rows)


def _join_rows(tx: Tx, room_id: int, since_seq: int | None, limit: int,
               since_change: int | None) -> tuple[Sequence[Any] | None, Found, Found | None]:
    room = tx.rows(ROOM_ROW, {"room": room_id})
    changed = None if since_change is None else _changed_rows(tx, room_id, since_change,
                                                              limit)
    return ((room[0] if room else None), _message_rows(tx, room_id, None, since_seq, limit),
            changed)


def room_info(row: Sequence[Any]) -> RoomInfo:
    """A ROOM_ROW as the edges see it."""
    return RoomInfo(int(row[0]), row[1], row[2], bool(row[3]), int(row[4]), int(row[5]),
                    read_datetime(row[6]), row[7], int(row[8]), row[9] is not None,
                    int(row[10]))


@dataclass
class JoinView:
    """What a join answers with: the room as it is now, the messages to show and (when
    asked with a change cursor) the messages changed since."""

    room: RoomInfo | None
    messages: list[StoredMessage]
    has_more: bool
    changes: list[StoredMessage] = field(default_factory=list)
    has_more_changes: bool = False


class MessageHistory:
    def __init__(self, db: Database, keyring: Keyring, audit: Audit) -> None:
        self._db = db
        self._reader = MessageReader(keyring, audit)

    async def _opened(self, found: Found, limit: int,
                      info: Any) -> tuple[list[StoredMessage], bool]:
        rows, mentions, reactions, files = found
        return (await self._reader.open_rows(rows[:limit], mentions, reactions, info, files),
                len(rows) > limit)

    async def for_join(self, room_id: int, since_seq: int | None, limit: int, info: Any,
                       since_change: int | None = None) -> JoinView:
        """The room's row and its newest ``limit`` messages (or up to ``limit`` after
        ``since_seq``), and what changed after ``since_change``, read in one snapshot: a
        join storm's per-join database work."""
        room, found, changed = await self._db.read(_join_rows, room_id, since_seq,
                                                   limit + 1, since_change)
        messages, has_more = await self._opened(found, limit, info)
        if since_seq is None:
            messages.reverse()
        changes, more_changes = ([], False) if changed is None else await self._opened(
            changed, limit, info)
        return JoinView(None if room is None else room_info(room), messages, has_more,
                        changes, more_changes)

    async def page(self, room_id: int, before_seq: int | None, limit: int,
                   info: Any) -> tuple[list[StoredMessage], bool]:
        """Up to ``limit`` messages before ``before_seq`` (newest page first), oldest first."""
        found = await self._db.read(_message_rows, room_id, before_seq, None, limit + 1)
        messages, has_more = await self._opened(found, limit, info)
        messages.reverse()
        return messages, has_more

    async def since(self, room_id: int, since_seq: int, limit: int,
                    info: Any) -> tuple[list[StoredMessage], bool]:
        """Messages after ``since_seq`` in order (what a reconnecting client missed)."""
        found = await self._db.read(_message_rows, room_id, None, since_seq, limit + 1)
        return await self._opened(found, limit, info)

    async def one(self, room_id: int, message_id: int, info: Any) -> StoredMessage | None:
        """One message as it is now (None when it is not in that room)."""
        found = await self._db.read(_one_rows, room_id, message_id)
        messages, _ = await self._opened(found, 1, info)
        return messages[0] if messages else None


__all__ = ["JoinView", "MessageHistory", "StoredMessage", "room_info"]
