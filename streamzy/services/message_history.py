"""Reading stored messages back: history pages and catch-up after a reconnect.

Rows are opened with their room's data key as they are read; a row that does not open
(tampered, or its key is gone) comes back with ``text=None`` and is audited once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from streamzy.storage.crypto import Keyring
from streamzy.storage.db import Database
from streamzy.storage.models import Message, User

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
        out = []
        for row in rows:
            text_ = await self._keyring.open(row.room_id, row.key_version, row.ciphertext)
            if text_ is None and row.id not in self._unreadable_seen:
                self._unreadable_seen.add(row.id)
                await self._audit("message_unreadable", info, None, room_id=row.room_id,
                                  message_id=row.id)
            out.append(StoredMessage(row.id, row.room_id, row.seq, row.sender_id,
                                     row.username or "[deleted]",
                                     row.display_name or "[deleted]", row.client_msg_id,
                                     text_, row.created_at, bool(row.is_bot)))
        return out

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
