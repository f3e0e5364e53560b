"""Changing a stored message: edit, delete and react, the use cases both edges call.

Each change takes the room's next change sequence number in the same transaction that
changes the message, so a client that was away asks for "what changed after N" and gets
the current state of those messages (``join {since_change}``). An edit seals the new text
in place of the old; a delete destroys the ciphertext (and the message's reactions and
mentions), leaving a tombstone; a reaction's emoji is sealed, with a keyed digest to find
"the same emoji" for the toggle. Every change spends the sender's message budget.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import LargeBinary, bindparam, text

from streamzy.clock import Clock, as_utc
from streamzy.services.content import emoji_problem
from streamzy.services.errors import Forbidden, Invalid, NotFound, Unavailable
from streamzy.services.events import EventBus, MessageChanged
from streamzy.services.key_versions import StaleKeyVersion
from streamzy.services.mentions import resolve_mentions
from streamzy.services.message_history import MessageHistory
from streamzy.services.message_state import StoredMessage
from streamzy.services.message_writer import MessageWriter, Sender
from streamzy.services.posting import MessagePosting
from streamzy.services.rooms import RoomInfo
from streamzy.services.search_index import blind_terms, blinder, drop_terms, write_terms
from streamzy.storage.crypto import Keyring
from streamzy.storage.db import Database, Tx
from streamzy.storage.models import UtcDateTime
from streamzy.storage.sqlite import read_datetime

Audit = Callable[..., Awaitable[None]]
# May this person moderate this room (delete others' messages)? Room roles decide.
CanModerate = Callable[[int, RoomInfo], Awaitable[bool]]
# Refuses (raises) a change in a room the person may not write to now (archived, muted).
CanWrite = Callable[[int, RoomInfo, Any], Awaitable[None]]
REACTION = "reaction"
RESEAL_ATTEMPTS = 3

_LOAD = text("SELECT id, sender_id, created_at, deleted_at, key_version FROM messages "
             "WHERE id = :id AND room_id = :room")
_TAKE_CHANGE = text("UPDATE rooms SET last_change = last_change + 1 WHERE id = :room "
                    "RETURNING last_change")
_EDIT = text("UPDATE messages SET ciphertext = :sealed, edited_at = :now, change_seq = :change "
             "WHERE id = :id AND deleted_at IS NULL AND key_version = :version RETURNING id").bindparams(
    bindparam("sealed", type_=LargeBinary), bindparam("now", type_=UtcDateTime))
_DELETE = text("UPDATE messages SET ciphertext = :empty, deleted_at = :now, "
               "change_seq = :change, mentions_room = :no WHERE id = :id "
               "AND deleted_at IS NULL RETURNING id").bindparams(
    bindparam("empty", type_=LargeBinary), bindparam("now", type_=UtcDateTime))
_TOUCH = text("UPDATE messages SET change_seq = :change WHERE id = :id RETURNING id")
_DROP_REACTIONS = text("DELETE FROM reactions WHERE message_id = :id RETURNING id")
_DROP_MENTIONS = text("DELETE FROM mentions WHERE message_id = :id RETURNING user_id")
_DROP_ATTACHMENTS = text("DELETE FROM attachments WHERE message_id = :id RETURNING id")
_MENTION = text("INSERT INTO mentions (message_id, user_id, room_id, seq) "
                "SELECT id, :user, room_id, seq FROM messages WHERE id = :id "
                "RETURNING message_id")
_SET_ROOM_MENTION = text("UPDATE messages SET mentions_room = :all WHERE id = :id RETURNING id")
_MINE = text("SELECT id FROM reactions WHERE message_id = :id AND user_id = :user "
             "AND emoji_mac = :mac")
_UNREACT = text("DELETE FROM reactions WHERE id = :reaction RETURNING id")
_KINDS = text("SELECT emoji_mac FROM reactions WHERE message_id = :id GROUP BY emoji_mac")
_REACT = text("INSERT INTO reactions (message_id, user_id, emoji_mac, key_version, ciphertext, "
              "created_at) VALUES (:id, :user, :mac, :version, :sealed, :now) RETURNING id"
              ).bindparams(bindparam("sealed", type_=LargeBinary),
                           bindparam("now", type_=UtcDateTime))


@dataclass(frozen=True)
class Target:
    id: int
    sender_id: int | None
    created_at: datetime
    deleted: bool
    key_version: int


@dataclass(frozen=True)
class Changed:
    """What a change's acknowledgement says."""

    id: int
    change_seq: int
    message: StoredMessage | None
    added: bool | None = None


def _load(tx: Tx, room_id: int, message_id: int) -> Target | None:
    rows = tx.rows(_LOAD, {"id": message_id, "room": room_id})
    if not rows:
        return None
    id_, sender_id, created_at, deleted_at, version = rows[0]
    return Target(int(id_), sender_id, read_datetime(created_at), deleted_at is not None,
                  int(version))


def _take_change(tx: Tx, room_id: int) -> int:
    return int(tx.rows(_TAKE_CHANGE, {"room": room_id})[0][0])


class Gone(Exception):
    """The message was deleted between the checks and the change."""


def _edit(tx: Tx, room_id: int, message_id: int, version: int, sealed: bytes, now: datetime,
          mentions: tuple[int, ...], whole_room: bool, terms: tuple[str, ...] = ()) -> int:
    change = _take_change(tx, room_id)  # locks the room first (services/key_versions.py)
    if not tx.rows(_EDIT, {"sealed": sealed, "now": now, "change": change, "id": message_id,
                           "version": version}):
        target = _load(tx, room_id, message_id)
        if target is None or target.deleted:
            raise Gone
        raise StaleKeyVersion({room_id: target.key_version})  # a rotation moved it
    tx.rows(_DROP_MENTIONS, {"id": message_id})
    for user_id in mentions:
        tx.rows(_MENTION, {"user": user_id, "id": message_id})
    tx.rows(_SET_ROOM_MENTION, {"all": whole_room, "id": message_id})
    drop_terms(tx, message_id)  # the old text's terms go with it
    write_terms(tx, [(message_id, room_id, version, terms)])
    return change


def _delete(tx: Tx, room_id: int, message_id: int, now: datetime) -> int:
    change = _take_change(tx, room_id)
    if not tx.rows(_DELETE, {"empty": b"", "now": now, "change": change, "no": False,
                             "id": message_id}):
        raise Gone
    tx.rows(_DROP_REACTIONS, {"id": message_id})
    tx.rows(_DROP_MENTIONS, {"id": message_id})
    drop_terms(tx, message_id)  # the row stays as a tombstone: its terms must not
    tx.rows(_DROP_ATTACHMENTS, {"id": message_id})  # its files go with it, sealed bytes too
    return change


def _react(tx: Tx, room_id: int, message_id: int, user_id: int, mac: str, version: int,
           sealed: bytes, now: datetime, kinds_max: int) -> tuple[int, bool]:
    """Toggle: remove the person's reaction with this emoji, or add it (within the bound
    on different emoji per message). Returns the change number and whether it was added."""
    change = _take_change(tx, room_id)  # locks the room first (services/key_versions.py)
    target = _load(tx, room_id, message_id)
    if target is None or target.deleted:
        raise Gone
    if target.key_version != version:  # a rotation moved the message since it was read
        raise StaleKeyVersion({room_id: target.key_version})
    mine = tx.rows(_MINE, {"id": message_id, "user": user_id, "mac": mac})
    if mine:
        tx.rows(_UNREACT, {"reaction": mine[0][0]})
        added = False
    else:
        kinds = {row[0] for row in tx.rows(_KINDS, {"id": message_id})}
        if mac not in kinds and len(kinds) >= kinds_max:
            raise Invalid("too_many_reactions",
                          f"A message can collect at most {kinds_max} different reactions.")
        tx.rows(_REACT, {"id": message_id, "user": user_id, "mac": mac, "version": version,
                         "sealed": sealed, "now": now})
        added = True
    tx.rows(_TOUCH, {"change": change, "id": message_id})
    return change, added


class MessageChanges:
    def __init__(self, db: Database, clock: Clock, keyring: Keyring, writer: MessageWriter,
                 posting: MessagePosting, history: MessageHistory, events: EventBus,
                 audit: Audit, *, edit_window_seconds: int, reactions_per_message: int,
                 can_moderate: CanModerate, can_write: CanWrite) -> None:
        self._db = db
        self._clock = clock
        self._keyring = keyring
        self._writer = writer
        self._posting = posting
        self._history = history
        self._events = events
        self._audit = audit
        self.edit_window = edit_window_seconds
        self.reactions_per_message = reactions_per_message
        self.can_moderate = can_moderate
        self._can_write = can_write

    async def _target(self, room: RoomInfo, message_id: int) -> Target:
        target = await self._db.read(_load, room.id, message_id)
        if target is None:
            raise NotFound("not_found", "No such message in this room.")
        return target

    async def _done(self, room: RoomInfo, message_id: int, change: int, kind: str,
                    info: Any, added: bool | None = None) -> Changed:
        """Publish the message as it is now (after the commit) and answer."""
        current = await self._history.one(room.id, message_id, info)
        if current is not None:
            await self._events.publish(MessageChanged(room.id, current.change_seq, kind,
                                                      current))
        return Changed(message_id, change, current, added)

    async def edit(self, sender: Sender, room: RoomInfo, message_id: int, new_text: str,
                   info: Any) -> Changed:
        """Replace the text of one's own message, within the edit window."""
        target = await self._target(room, message_id)
        if target.sender_id != sender.user_id:
            raise Forbidden("not_yours", "You can only edit your own messages.")
        if target.deleted:
            raise Invalid("deleted", "This message was deleted.")
        now = self._clock.now()
        if self.edit_window <= 0 or as_utc(now) - as_utc(target.created_at) > timedelta(
                seconds=self.edit_window):
            raise Forbidden("edit_window_closed", "This message can no longer be edited.")
        await self._can_write(sender.user_id, room, info)
        cleaned = await self._writer.check_text(sender, room, new_text, info)
        await self._posting.spend(sender, info)
        mentions, whole_room = ((), False) if "@" not in cleaned else await resolve_mentions(
            self._db, room.id, cleaned, sender.user_id)
        version = target.key_version
        try:
            for _attempt in range(RESEAL_ATTEMPTS):
                sealed = await self._keyring.seal(room.id, version, cleaned)
                key = await self._keyring.data_key(room.id, version)
                terms = () if key is None else blind_terms(blinder(key), cleaned)
                try:
                    change = await self._db.run_transaction(
                        _edit, room.id, message_id, version, sealed, now, mentions, whole_room,
                        terms)
                    break
                except StaleKeyVersion as stale:
                    version = stale.current[room.id]
            else:
                raise Unavailable("busy", "The message is being re-encrypted; try again.")
        except Gone:
            raise Invalid("deleted", "This message was deleted.") from None
        return await self._done(room, message_id, change, "edit", info)

    async def delete(self, actor: Sender, room: RoomInfo, message_id: int, info: Any,
                     reason: str = "") -> Changed:
        """Destroy a message's text (one's own, or anyone's for the room's moderators)."""
        target = await self._target(room, message_id)
        own = target.sender_id == actor.user_id
        if not own and not await self.can_moderate(actor.user_id, room):
            raise Forbidden("forbidden", "You can only delete your own messages.")
        if target.deleted:
            raise Invalid("deleted", "This message was already deleted.")
        await self._posting.spend(actor, info)
        try:
            change = await self._db.run_transaction(_delete, room.id, message_id,
                                                    self._clock.now())
        except Gone:
            raise Invalid("deleted", "This message was already deleted.") from None
        await self._audit("message_deleted", info, actor.user_id, room_id=room.id,
                          message_id=message_id, sender_id=target.sender_id,
                          by="sender" if own else "moderator", reason=reason[:200])
        return await self._done(room, message_id, change, "delete", info)

    async def react(self, actor: Sender, room: RoomInfo, message_id: int, emoji: str,
                    info: Any) -> Changed:
        """Toggle the actor's reaction ``emoji`` on a message."""
        problem = emoji_problem(emoji)
        if problem is not None:
            raise Invalid("invalid_emoji", problem)
        target = await self._target(room, message_id)
        if target.deleted:
            raise Invalid("deleted", "This message was deleted.")
        await self._can_write(actor.user_id, room, info)
        await self._posting.spend(actor, info)
        # Under the message's key version: every reaction to it compares within one key
        # (a rotation moves a message and its reactions together, in one transaction).
        version = target.key_version
        try:
            for _attempt in range(RESEAL_ATTEMPTS):
                mac = await self._keyring.blind(room.id, version, REACTION, emoji)
                sealed = await self._keyring.seal(room.id, version, emoji)
                try:
                    change, added = await self._db.run_transaction(
                        _react, room.id, message_id, actor.user_id, mac, version, sealed,
                        self._clock.now(), self.reactions_per_message)
                    break
                except StaleKeyVersion as stale:
                    version = stale.current[room.id]
            else:
                raise Unavailable("busy", "The message is being re-encrypted; try again.")
        except Gone:
            raise Invalid("deleted", "This message was deleted.") from None
        return await self._done(room, message_id, change, "react", info, added)
