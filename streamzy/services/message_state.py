"""A message as it is now: text (opened), edit and delete marks, the message it answers,
its reactions and mentions. One reader for every path that shows messages (history pages,
catch-up, changes replayed after a reconnect, a change just made), so they agree.

Rows come from plain statements run by Database.read or inside a transaction; their text,
their parent's text and their reactions' emoji are opened with the room's data key here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import TextClause, text

from streamzy.services.attachment_views import AttachmentView, open_views
from streamzy.storage.crypto import Keyring
from streamzy.storage.db import Tx
from streamzy.storage.sqlite import read_datetime

Audit = Callable[..., Awaitable[None]]
EXCERPT_CHARS = 200
REACTION_USERS_SHOWN = 100


@dataclass(frozen=True)
class Person:
    id: int | None
    username: str
    display_name: str
    is_bot: bool = False


@dataclass(frozen=True)
class ReplyPreview:
    """The message a reply answers, as quoted above it (an excerpt, opened)."""

    id: int
    seq: int
    sender: Person | None
    excerpt: str
    deleted: bool


@dataclass(frozen=True)
class ReactionView:
    emoji: str
    count: int
    users: tuple[int, ...]


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
    edited_at: datetime | None = None
    deleted: bool = False
    reply: ReplyPreview | None = None
    reactions: tuple[ReactionView, ...] = ()
    mentions: tuple[int, ...] = ()
    mentions_room: bool = False
    change_seq: int = 0
    reply_to_id: int | None = field(default=None, repr=False)
    # Set on a fresh send, for notices elsewhere: the room's name, and a DM's people.
    room_name: str = field(default="", repr=False)
    dm_members: tuple[int, ...] = field(default=(), repr=False)
    attachments: tuple[AttachmentView, ...] = ()

    @property
    def in_dm(self) -> bool:
        return bool(self.dm_members)


def excerpt(text_: str | None) -> str:
    if not text_:
        return ""
    flat = " ".join(text_.split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[:EXCERPT_CHARS - 1] + "\u2026"


# Every message read selects these columns in this order (see MessageReader.open_rows).
SELECT_MESSAGES = (
    "SELECT m.id, m.room_id, m.seq, m.sender_id, m.client_msg_id, m.key_version, "
    "m.ciphertext, m.created_at, u.username, u.display_name, u.is_bot, "
    "m.reply_to_id, m.mentions_room, m.edited_at, m.deleted_at, m.change_seq, "
    "p.seq, p.sender_id, pu.username, pu.display_name, pu.is_bot, p.key_version, "
    "p.ciphertext, p.deleted_at "
    "FROM messages m LEFT JOIN users u ON u.id = m.sender_id "
    "LEFT JOIN messages p ON p.id = m.reply_to_id AND p.room_id = m.room_id "
    "LEFT JOIN users pu ON pu.id = p.sender_id ")


def message_query(where: str) -> TextClause:
    """SELECT_MESSAGES with a WHERE clause; callers pass constant text only (every value
    is a bound :parameter)."""
    return text(SELECT_MESSAGES + where)  # nosemgrep: sql-text-built-from-strings - constants only


ONE = message_query("WHERE m.id = :id AND m.room_id = :room")


@lru_cache(maxsize=128)
def _in_ids(select_from_where: str, count: int) -> TextClause:
    # Built from constant SQL (callers pass literals) and integers; values are bound.
    holes = ", ".join(f":i{n}" for n in range(count))
    return text(  # nosemgrep: sql-text-built-from-strings - constants and ints
        f"{select_from_where} ({holes})")


_MENTIONS = "SELECT message_id, user_id FROM mentions WHERE message_id IN"
_REACTIONS = ("SELECT message_id, emoji_mac, user_id, key_version, ciphertext, id "
              "FROM reactions WHERE message_id IN")


def extras(tx: Tx, rows: Sequence[Sequence[Any]]) -> tuple[
        Sequence[Sequence[Any]], Sequence[Sequence[Any]]]:
    """The mentions of ``rows`` and the reactions of those ever changed (a message that was
    never edited or reacted to has none: its change_seq is NULL), in the caller's snapshot."""
    ids = [row[0] for row in rows]
    changed = [row[0] for row in rows if row[15] is not None]
    mentions: Sequence[Sequence[Any]] = []
    reactions: Sequence[Sequence[Any]] = []
    for start in range(0, len(ids), 100):
        chunk = ids[start:start + 100]
        mentions = [*mentions, *tx.rows(_in_ids(_MENTIONS, len(chunk)),
                                        {f"i{n}": v for n, v in enumerate(chunk)})]
    for start in range(0, len(changed), 100):
        chunk = changed[start:start + 100]
        reactions = [*reactions, *tx.rows(_in_ids(_REACTIONS, len(chunk)),
                                          {f"i{n}": v for n, v in enumerate(chunk)})]
    return mentions, reactions


def one_message(tx: Tx, room_id: int, message_id: int) -> tuple[
        Sequence[Sequence[Any]], Sequence[Sequence[Any]], Sequence[Sequence[Any]]]:
    rows = tx.rows(ONE, {"id": message_id, "room": room_id})
    return (rows, *extras(tx, rows))


class MessageReader:
    """Opens message rows with their room's key into StoredMessage."""

    def __init__(self, keyring: Keyring, audit: Audit) -> None:
        self._keyring = keyring
        self._audit = audit
        self._unreadable_seen: set[int] = set()

    async def open_rows(self, rows: Sequence[Sequence[Any]], mentions: Sequence[Sequence[Any]],
                        reactions: Sequence[Sequence[Any]], info: Any,
                        files: Sequence[Sequence[Any]] = ()) -> list[StoredMessage]:
        """``files``: the rows' attachment rows (``attachment_views.attachment_rows``)."""
        named: dict[int, list[int]] = {}
        for message_id, user_id in mentions:
            named.setdefault(message_id, []).append(user_id)
        grouped = await self._reactions(rows, reactions)
        carried = await open_views(self._keyring, files) if files else {}
        out = []
        for row in rows:
            (id_, room_id, seq, sender_id, client_msg_id, key_version, ciphertext, created_at,
             username, display_name, is_bot, reply_to_id, mentions_room, edited_at,
             deleted_at, change_seq) = row[:16]
            deleted = deleted_at is not None
            text_: str | None = ""
            if not deleted:
                text_ = await self._keyring.open(room_id, key_version, bytes(ciphertext))
                if text_ is None and id_ not in self._unreadable_seen:
                    self._unreadable_seen.add(id_)
                    await self._audit("message_unreadable", info, None, room_id=room_id,
                                      message_id=id_)
            out.append(StoredMessage(
                id_, room_id, seq, sender_id, username or "[deleted]",
                display_name or "[deleted]", client_msg_id, text_, read_datetime(created_at),
                bool(is_bot), read_datetime(edited_at) if edited_at is not None else None,
                deleted, await self._reply(row), grouped.get(id_, ()),
                tuple(sorted(named.get(id_, ()))), bool(mentions_room), int(change_seq or 0),
                reply_to_id, attachments=() if deleted else carried.get(id_, ())))
        return out

    async def _reply(self, row: Sequence[Any]) -> ReplyPreview | None:
        reply_to_id = row[11]
        if reply_to_id is None or row[16] is None:
            return None  # not a reply, or its parent is gone
        (p_seq, p_sender, p_username, p_display, p_bot, p_version, p_cipher,
         p_deleted) = row[16:24]
        deleted = p_deleted is not None
        opened = None if deleted else await self._keyring.open(row[1], p_version,
                                                               bytes(p_cipher))
        sender = None if p_sender is None else Person(p_sender, p_username or "[deleted]",
                                                      p_display or "[deleted]", bool(p_bot))
        return ReplyPreview(reply_to_id, p_seq, sender, excerpt(opened), deleted)

    async def _reactions(self, rows: Sequence[Sequence[Any]], reactions: Sequence[Sequence[Any]]
                         ) -> dict[int, tuple[ReactionView, ...]]:
        room_of = {row[0]: row[1] for row in rows}
        groups: dict[tuple[int, str], list[Sequence[Any]]] = {}
        for reaction in sorted(reactions, key=lambda r: r[5]):  # oldest first
            groups.setdefault((reaction[0], reaction[1]), []).append(reaction)
        views: dict[int, list[ReactionView]] = {}
        for (message_id, _mac), group in groups.items():
            first = group[0]
            emoji = await self._keyring.open(room_of[message_id], first[3], bytes(first[4]))
            if emoji is None:
                continue  # unreadable: not shown rather than shown wrong
            users = tuple(r[2] for r in group[:REACTION_USERS_SHOWN])
            views.setdefault(message_id, []).append(ReactionView(emoji, len(group), users))
        return {k: tuple(v) for k, v in views.items()}
