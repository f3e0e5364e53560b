"""What each chat event does, once the namespace's guards have passed it.

Every handler takes ``(sid, principal, data)``, validates ``data`` with its schema, calls
the services and returns the ack. ``on_message`` returns an awaitable ack instead: the
message is queued while the connection's event order is held, and its commit is awaited
after, so the next event of the same client is not held up by this one's commit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from streamzy import wire
from streamzy.guards.validation import parse
from streamzy.realtime.presence import Gone, Presence
from streamzy.realtime.principal import Principal
from streamzy.realtime.room_cache import RoomCache
from streamzy.realtime.schemas import HistoryPage, InRoom, JoinRoom, MarkRead, SendMessage
from streamzy.services.direct import DirectMessages
from streamzy.services.errors import ServiceError
from streamzy.services.message_history import MessageHistory
from streamzy.services.posting import MessagePosting
from streamzy.services.room_rules import RoomRules
from streamzy.services.rooms import RoomInfo, Rooms

MISSED_LIMIT = 500
Audit = Callable[..., Awaitable[None]]
Handler = Callable[[str, Principal, Any], Awaitable[Any]]


class ChatHandlers:
    def __init__(self, *, rooms: Rooms, history: MessageHistory, posting: MessagePosting,
                 room_cache: RoomCache, presence: Presence, audit: Audit,
                 direct: DirectMessages, rules: RoomRules) -> None:
        self._rooms = rooms
        self._direct = direct
        self._rules = rules
        self._history = history
        self._posting = posting
        self._room_cache = room_cache
        self._presence = presence
        self._audit = audit

    def table(self) -> dict[str, Handler]:
        """Event name -> handler: the complete list of events a client may send."""
        return {"rooms": self.on_rooms, "join": self.on_join, "leave": self.on_leave,
                "message": self.on_message, "history": self.on_history,
                "typing": self.on_typing, "read": self.on_read}

    async def member_room(self, sid: str, principal: Principal, ref: int | str,
                           event: str) -> RoomInfo:
        room = await self._room_cache.get(ref)
        if not self._presence.joined(sid, room.id):  # joined: checked when it joined
            await self._rooms.require_member(principal.user_id, room.id, principal.info,
                                             on=event)
        return room

    async def on_rooms(self, sid: str, principal: Principal, data: Any) -> dict[str, Any]:
        views = await self._rooms.visible(principal.user_id)
        if principal.is_bot:
            views = [v for v in views if v.member]
        return {"ok": True, "rooms": [v.public() for v in views]}

    async def on_join(self, sid: str, principal: Principal, data: Any) -> dict[str, Any]:
        event = parse(JoinRoom, data)
        room = await self._room_cache.get(event.room)
        try:
            await self._rooms.join(principal.user_id, room,
                                   may_join_public=not principal.is_bot)
        except ServiceError:
            await self._audit("room_access_denied", principal.info, principal.user_id,
                              room_id=room.id, on="join")
            raise
        # Enter first, then read: a message committed in between arrives live and in the
        # missed list, and the client de-duplicates by sequence; none can fall in a gap.
        try:
            await self._presence.enter(sid, principal, room.id)
        except Gone:
            return wire.error("not_connected", "The connection closed during the join.")
        view = await self._history.for_join(
            room.id, event.since_seq, 50 if event.since_seq is None else MISSED_LIMIT,
            principal.info, event.since_change)
        current = view.room or room
        answer_room = wire.room(current)
        if event.since_seq is None:  # a first join (a page load), not a reconnect's catch-up
            answer_room["can_moderate"] = await self._rules.can_moderate(principal.user_id,
                                                                         current)
            answer_room["muted_until"] = await self._rules.muted_until(principal.user_id,
                                                                       current)
        if current.is_dm:
            answer_room["members"] = [wire.person(p)
                                      for p in await self._direct.members(room.id)]
        # Last: a presence batch sent before the answer is already in it, and one sent after
        # it only repeats or adds to it (batches are idempotent).
        online, online_count = await self._presence.snapshot(room.id)
        answer = {"ok": True, "room": answer_room,
                  "messages": wire.messages(view.messages), "has_more": view.has_more,
                  "mode": "history" if event.since_seq is None else "since",
                  "last_change": current.last_change,
                  "online": online, "online_count": online_count}
        if event.since_change is not None:
            answer["changes"] = wire.messages(view.changes)
            answer["has_more_changes"] = view.has_more_changes
        return answer

    async def on_leave(self, sid: str, principal: Principal, data: Any) -> dict[str, Any]:
        event = parse(InRoom, data)
        room = await self._room_cache.get(event.room)
        # Leaving ends the membership (unless refused: a room's last owner), so then every
        # connection of this user here stops using it. Bots keep their rooms.
        if not principal.is_bot:
            await self._rooms.leave(principal.user_id, room.id, principal.info)
        await self._presence.leave_everywhere_as(principal.user_id, room.id)
        return {"ok": True}

    async def on_message(self, sid: str, principal: Principal, data: Any) -> Any:
        """Queue the message; the returned awaitable is the ack, after the commit."""
        event = parse(SendMessage, data)
        room = await self._room_cache.get(event.room)
        future = await self._posting.submit(principal.sender, room, event.client_msg_id,
                                            event.text, principal.info,
                                            known_member=self._presence.joined(sid, room.id),
                                            reply_to=event.reply_to,
                                            attachments=event.attachments)

        async def ack() -> dict[str, Any]:
            return wire.ack(await future, room.id)

        return ack()

    async def on_history(self, sid: str, principal: Principal, data: Any) -> dict[str, Any]:
        event = parse(HistoryPage, data)
        room = await self.member_room(sid, principal, event.room, "history")
        messages, has_more = await self._history.page(room.id, event.before_seq, event.limit,
                                                      principal.info)
        return {"ok": True, "room": room.id, "messages": wire.messages(messages),
                "has_more": has_more}

    async def on_typing(self, sid: str, principal: Principal, data: Any) -> dict[str, Any]:
        """Shown to the room in its next batch; in rooms too large for typing indicators
        it is dropped (``shown: false``), as large chat products do."""
        event = parse(InRoom, data)
        room = await self._room_cache.get(event.room)
        if not self._presence.joined(sid, room.id):
            return wire.error("not_joined", "Join the room first.")
        return {"ok": True, "shown": self._presence.typing(room.id, principal)}

    async def on_read(self, sid: str, principal: Principal, data: Any) -> dict[str, Any]:
        event = parse(MarkRead, data)
        room = await self.member_room(sid, principal, event.room, "read")
        await self._rooms.mark_read(principal.user_id, room.id, event.seq)
        return {"ok": True}
