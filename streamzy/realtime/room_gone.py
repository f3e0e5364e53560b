"""What the chat edge does once a room or direct conversation was shredded (``RoomDeleted``).

The room-wide variant of a removal (``room_notices.py``): first everyone in the room and
everyone watching it hears ``removed {room, reason: "deleted"}`` (emits go through the
Socket.IO manager, so they reach every process), then every socket in it, on every process,
leaves the room and its activity channel (``SocketRegistry.room_gone``: here at once,
elsewhere through Redis), and every process forgets its cached rules of the room. A
socket that asks for the room afterwards finds no such room.
"""

from __future__ import annotations

import socketio

from streamzy.realtime.delivery import activity_channel, room_channel
from streamzy.realtime.presence import Presence
from streamzy.realtime.registry import SocketRegistry
from streamzy.services.events import EventBus, RoomDeleted

NAMESPACE = "/"


class RoomGone:
    def __init__(self, sio: socketio.AsyncServer, registry: SocketRegistry,
                 presence: Presence) -> None:
        self._sio = sio
        self._registry = registry
        self._presence = presence
        registry.on_room_gone = self.take_all_out

    def subscribe(self, events: EventBus) -> None:
        events.subscribe(RoomDeleted, self.room_deleted)

    async def room_deleted(self, event: RoomDeleted) -> None:
        notice = {"room": event.room_id, "reason": event.reason}
        await self._sio.emit("removed", notice, room=room_channel(event.room_id))
        await self._sio.emit("removed", notice, room=activity_channel(event.room_id))
        await self._registry.room_gone(event.room_id)
        await self._registry.room_changed(event.room_id)

    async def take_all_out(self, room_id: int) -> None:
        """This process's part: its sockets leave the room and stop watching it."""
        await self._presence.leave_everyone(room_id)
        watching = self._sio.manager.rooms.get(NAMESPACE, {}).get(activity_channel(room_id), {})
        for sid in list(watching):
            await self._sio.leave_room(sid, activity_channel(room_id))
