"""Attachments as messages show them: public id, name (opened), sniffed type, size, pixels.

Read with the messages that carry them (one indexed query per page of messages, in the
same snapshot), never their bytes: those are fetched one file at a time through the
membership-checked file route.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import TextClause, text

from streamzy.storage.crypto import Keyring
from streamzy.storage.db import Tx

UNREADABLE_NAME = "[unreadable file]"
_FILES = ("SELECT message_id, public_id, room_id, key_version, name_sealed, content_type, "
          "size, width, height, CASE WHEN thumbnail IS NULL THEN 0 ELSE 1 END, id "
          "FROM attachments WHERE message_id IN")


@dataclass(frozen=True)
class AttachmentView:
    public_id: str
    name: str
    content_type: str
    size: int
    width: int | None = None
    height: int | None = None
    has_thumbnail: bool = False

    def public(self) -> dict[str, Any]:
        """The wire shape (the same on Socket.IO and the API)."""
        return {"id": self.public_id, "name": self.name, "type": self.content_type,
                "size": self.size, "width": self.width, "height": self.height,
                "thumbnail": self.has_thumbnail}


@lru_cache(maxsize=128)
def _of_messages(count: int) -> TextClause:
    holes = ", ".join(f":i{n}" for n in range(count))
    # Built from a constant and integers only; every value is a bound parameter.
    return text(  # nosemgrep: sql-text-built-from-strings - constant and ints
        f"{_FILES} ({holes})")


def attachment_rows(tx: Tx, rows: Sequence[Sequence[Any]]) -> Sequence[Sequence[Any]]:
    """The attachments of message ``rows`` (column 0: message id), in the caller's snapshot."""
    ids = [row[0] for row in rows]
    found: list[Sequence[Any]] = []
    for start in range(0, len(ids), 100):
        chunk = ids[start:start + 100]
        found.extend(tx.rows(_of_messages(len(chunk)),
                             {f"i{n}": v for n, v in enumerate(chunk)}))
    return found


async def open_views(keyring: Keyring, rows: Sequence[Sequence[Any]]
                     ) -> dict[int, tuple[AttachmentView, ...]]:
    """message id -> its attachments in upload order, names opened with the room's key."""
    grouped: dict[int, list[tuple[int, AttachmentView]]] = {}
    for (message_id, public_id, room_id, version, sealed, content_type, size, width, height,
         thumb, row_id) in rows:
        name = await keyring.open(int(room_id), int(version), bytes(sealed))
        grouped.setdefault(int(message_id), []).append((int(row_id), AttachmentView(
            str(public_id), name if name is not None else UNREADABLE_NAME, str(content_type),
            int(size), None if width is None else int(width),
            None if height is None else int(height), bool(thumb))))
    return {k: tuple(v for _, v in sorted(items, key=lambda p: p[0]))
            for k, items in grouped.items()}
