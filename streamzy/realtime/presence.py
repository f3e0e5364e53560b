"""Who is in which room on this process: Socket.IO room membership, the room index, and the
online list each room is told about when someone joins or leaves."""

from __future__ import annotations

from typing import Any

import socketio

from streamzy.realtime.delivery import Delivery, room_channel
from streamzy.realtime.principal import Connections
from streamzy.realtime.room_index import RoomIndex


class Presence:
    def __init__(self, sio: socketio.AsyncServer, connections: Connections,
                 delivery: Delivery) -> None:
        self._sio = sio
        self._connections = connections
        self._delivery = delivery
        self._index = RoomIndex()

    async def enter(self, sid: str, room_id: int) -> None:
        await self._sio.enter_room(sid, room_channel(room_id))
        self.record_joined(sid, room_id)

    def record_joined(self, sid: str, room_id: int) -> None:
        """Note that ``sid`` joined (membership checked), so later events skip the check.
        ``enter`` does this after the transport joined; benchmarks use it on its own."""
        self._index.add(sid, room_id)

    async def leave_everywhere_as(self, user_id: int, room_id: int) -> None:
        """Take every socket of ``user_id`` on this process out of the room."""
        for sid in self._index.members(room_id):
            who = self._connections.get(sid)
            if who is not None and who.user_id == user_id:
                await self._sio.leave_room(sid, room_channel(room_id))
                self._index.discard(sid, room_id)

    def joined(self, sid: str, room_id: int) -> bool:
        return self._index.joined(sid, room_id)

    def forget(self, sid: str) -> set[int]:
        """A socket left: the rooms it was in (Socket.IO itself leaves them on disconnect)."""
        return self._index.remove(sid)

    def rooms_indexed(self) -> int:
        return self._index.size()

    async def announce(self, room_id: int) -> None:
        seen: dict[int, dict[str, Any]] = {}
        for sid in self._index.members(room_id):
            principal = self._connections.get(sid)
            if principal is not None:
                seen[principal.user_id] = principal.public()
        await self._delivery.presence(room_id, sorted(seen.values(),
                                                      key=lambda p: p["username"]))
