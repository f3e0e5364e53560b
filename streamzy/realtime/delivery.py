"""The only place that emits to clients. Messages go out after their commit, in order."""

from __future__ import annotations

from typing import Any

import socketio

from streamzy.services.messages import StoredMessage


def room_channel(room_id: int) -> str:
    return f"r:{room_id}"


class Delivery:
    def __init__(self, sio: socketio.AsyncServer) -> None:
        self._sio = sio

    async def messages(self, stored: list[StoredMessage]) -> None:
        """Called by the message writer after each committed batch (sequence order)."""
        for message in stored:
            await self._sio.emit("message", message.payload(), room=room_channel(message.room_id))

    async def typing(self, room_id: int, who: dict[str, Any], skip_sid: str) -> None:
        await self._sio.emit("typing", {"room": room_id, "user": who},
                             room=room_channel(room_id), skip_sid=skip_sid)

    async def presence(self, room_id: int, online: list[dict[str, Any]]) -> None:
        await self._sio.emit("presence", {"room": room_id, "online": online},
                             room=room_channel(room_id))

    async def session_ended(self, sid: str, reason: str) -> None:
        """Tell the client why, then drop the connection."""
        await self._sio.emit("session_ended", {"reason": reason}, to=sid)
        await self._sio.disconnect(sid)
