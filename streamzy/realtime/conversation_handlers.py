"""Conversation events: edit, delete and react to messages, open a direct conversation,
watch one's rooms for activity. Same contract as handlers.py: ``(sid, principal, data)``,
validated with its schema, one service call, an ack."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import socketio

from streamzy import wire
from streamzy.guards.validation import parse
from streamzy.realtime.delivery import activity_channel, user_channel
from streamzy.realtime.handlers import ChatHandlers, Handler
from streamzy.realtime.principal import Principal
from streamzy.realtime.schemas import DeleteMessage, EditMessage, OpenDirect, React, Watch
from streamzy.services.direct import DirectMessages
from streamzy.services.errors import Forbidden
from streamzy.services.message_changes import MessageChanges
from streamzy.services.message_state import Person
from streamzy.services.rooms import Rooms

Audit = Callable[..., Awaitable[None]]


class ConversationHandlers:
    def __init__(self, *, sio: socketio.AsyncServer, chat: ChatHandlers, rooms: Rooms,
                 changes: MessageChanges, direct: DirectMessages) -> None:
        self._sio = sio
        self._chat = chat
        self._rooms = rooms
        self._changes = changes
        self._direct = direct

    def table(self) -> dict[str, Handler]:
        return {"edit": self.on_edit, "delete": self.on_delete, "react": self.on_react,
                "dm": self.on_dm, "watch": self.on_watch}

    async def on_edit(self, sid: str, principal: Principal, data: Any) -> dict[str, Any]:
        event = parse(EditMessage, data)
        room = await self._chat.member_room(sid, principal, event.room, "edit")
        return wire.changed(await self._changes.edit(principal.sender, room, event.id, event.text,
                                                 principal.info))

    async def on_delete(self, sid: str, principal: Principal, data: Any) -> dict[str, Any]:
        event = parse(DeleteMessage, data)
        room = await self._chat.member_room(sid, principal, event.room, "delete")
        return wire.changed(await self._changes.delete(principal.sender, room, event.id,
                                                   principal.info, event.reason))

    async def on_react(self, sid: str, principal: Principal, data: Any) -> dict[str, Any]:
        event = parse(React, data)
        room = await self._chat.member_room(sid, principal, event.room, "react")
        return wire.changed(await self._changes.react(principal.sender, room, event.id,
                                                      event.emoji, principal.info))

    async def on_dm(self, sid: str, principal: Principal, data: Any) -> dict[str, Any]:
        event = parse(OpenDirect, data)
        opener = Person(principal.user_id, principal.username, principal.display_name,
                        principal.is_bot)
        if principal.is_bot:  # bots answer in DMs they were added to; they open none
            raise Forbidden("dm_not_allowed", "Bots cannot open direct conversations.")
        opened = await self._direct.open(opener, event.users, principal.info)
        room = wire.room(opened.room)
        room["members"] = [wire.person(p) for p in opened.members]
        return {"ok": True, "room": room, "created": opened.created}

    async def on_watch(self, sid: str, principal: Principal, data: Any) -> dict[str, Any]:
        """Hear about activity (new messages, mentions, DMs) in one's other rooms."""
        event = parse(Watch, data)
        wanted = set(event.rooms)
        views = [v for v in await self._rooms.visible(principal.user_id)
                 if v.member and v.id in wanted]
        await self._sio.enter_room(sid, user_channel(principal.user_id))
        for view in views:
            await self._sio.enter_room(sid, activity_channel(view.id))
        return {"ok": True, "rooms": [{"id": v.id, "last_seq": v.last_seq,
                                       "unread": v.public()["unread"],
                                       "mentions": v.mentions} for v in views]}
