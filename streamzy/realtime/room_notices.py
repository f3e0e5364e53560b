"""What the chat edge does after a moderation change has committed (event bus subscribers).

- ``MemberRemoved`` (kicked, banned, left): every socket of that person leaves the room (and
  its activity channel) on every process (``SocketRegistry.leave_room``: here at once,
  elsewhere through Redis), so it stops receiving the room and its next event there is
  checked again (``not_a_member``); then their sockets hear ``removed {room, reason}``.
- ``StandingChanged`` (role, mute): their sockets hear ``standing {room, role,
  muted_until}``, so a client can say why it cannot post.
- ``RoomStateChanged`` (archive, slow mode): the room hears ``room_state {room, archived,
  slow_mode_seconds}``.
- For all three, every other process forgets its cached rules of the room
  (``services/room_rules.py``), so a mute or slow mode set here applies there at once.

Emits to ``u:<id>`` and ``r:<id>`` go through the Socket.IO manager, so they reach every
process when Redis is configured. (Kept apart from ``delivery.py``, which carries the
message stream; both only emit after commit.)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import socketio

from streamzy.clock import as_utc
from streamzy.realtime.delivery import activity_channel, room_channel, user_channel
from streamzy.realtime.presence import Presence
from streamzy.realtime.registry import SocketRegistry
from streamzy.services.events import EventBus, MemberRemoved, RoomStateChanged, StandingChanged


def _time(value: datetime | None) -> str | None:
    return as_utc(value).isoformat() if value is not None else None


class RoomNotices:
    def __init__(self, sio: socketio.AsyncServer, registry: SocketRegistry,
                 presence: Presence) -> None:
        self._sio = sio
        self._registry = registry
        self._presence = presence

    async def take_out(self, user_id: int, room_id: int) -> None:
        """This process's part of a removal: the person's sockets leave the room, and stop
        hearing its activity (unread counts) if they were watching it."""
        await self._presence.leave_everywhere_as(user_id, room_id)
        for sid in self._registry.sids(f"user:{user_id}"):
            await self._sio.leave_room(sid, activity_channel(room_id))

    def subscribe(self, events: EventBus) -> None:
        events.subscribe(MemberRemoved, self.member_removed)
        events.subscribe(StandingChanged, self.standing_changed)
        events.subscribe(RoomStateChanged, self.room_state_changed)

    async def member_removed(self, event: MemberRemoved) -> None:
        await self._registry.leave_room(event.user_id, event.room_id)
        await self._registry.room_changed(event.room_id)  # a removed moderator's exemption
        await self._emit("removed", {"room": event.room_id, "reason": event.reason},
                         user_channel(event.user_id))

    async def standing_changed(self, event: StandingChanged) -> None:
        await self._registry.room_changed(event.room_id)
        await self._emit("standing", {"room": event.room_id, "role": event.role,
                                      "muted_until": _time(event.muted_until)},
                         user_channel(event.user_id))

    async def room_state_changed(self, event: RoomStateChanged) -> None:
        await self._registry.room_changed(event.room_id)
        await self._emit("room_state", {"room": event.room_id, "archived": event.archived,
                                        "slow_mode_seconds": event.slow_mode_seconds},
                         room_channel(event.room_id))

    async def _emit(self, name: str, data: dict[str, Any], to: str) -> None:
        await self._sio.emit(name, data, room=to)
