"""Mentions: ``@username`` names a member of the room, ``@room`` everyone in it.

Found in the text when it is sent or edited (the server has the plaintext then, and only
then): the named members are stored as metadata rows (who was mentioned, like who sent),
which the per-room mention counters count after each reader's position.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import TextClause, text

from streamzy.services.content import without_code
from streamzy.storage.db import Database, Tx

MAX_NAMED = 20  # distinct @names looked up per message; the rest are plain text
ROOM_WORDS = frozenset({"room", "here", "all", "everyone"})
# A mention starts a word: "mail@example.org" names nobody.
_MENTION = re.compile(r"(?<![\w@.])@([A-Za-z0-9][A-Za-z0-9._-]{0,31})")


def parse_mentions(text_: str) -> tuple[list[str], bool]:
    """The usernames named (lowercase, in order, at most MAX_NAMED) and whether the whole
    room is. Code spans and blocks are not read: ``@name`` in code mentions nobody."""
    if "@" not in text_:
        return [], False
    names: list[str] = []
    whole_room = False
    for match in _MENTION.finditer(without_code(text_)):
        name = match.group(1).rstrip("._-").lower()
        if name in ROOM_WORDS:
            whole_room = True
        elif name and name not in names and len(names) < MAX_NAMED:
            names.append(name)
    return names, whole_room


@lru_cache(maxsize=MAX_NAMED)
def _members_named(count: int) -> TextClause:
    holes = ", ".join(f":n{i}" for i in range(count))
    # Built from integers only; every name is a bound parameter.
    return text(  # nosemgrep: sql-text-built-from-strings - int placeholders only
        "SELECT u.id FROM users u JOIN memberships m ON m.user_id = u.id "  # noqa: S608 - ints only  # nosec B608
        f"AND m.room_id = :room WHERE u.is_active AND u.username IN ({holes})")


def _member_ids(tx: Tx, room_id: int, names: Sequence[str]) -> Sequence[Sequence[Any]]:
    params: dict[str, Any] = {f"n{i}": name for i, name in enumerate(names)}
    params["room"] = room_id
    return tx.rows(_members_named(len(names)), params)


async def resolve_mentions(db: Database, room_id: int, text_: str,
                           sender_id: int) -> tuple[tuple[int, ...], bool]:
    """The ids of the room's members that ``text_`` names (never the sender) and whether
    it names the whole room. One read, only for texts with an @ in them."""
    names, whole_room = parse_mentions(text_)
    if not names:
        return (), whole_room
    rows = await db.read(_member_ids, room_id, names)
    return tuple(sorted({int(r[0]) for r in rows} - {sender_id})), whole_room
