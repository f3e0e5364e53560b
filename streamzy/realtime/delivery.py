"""The only place that emits to clients. Messages go out after their commit, in order.

Stored batches are queued and emitted by one task, so the message writer never waits for
fan-out (or for a slow Redis) before committing the next batch, and order is kept.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import socketio

from streamzy import wire
from streamzy.services.events import MessagesStored
from streamzy.services.message_history import StoredMessage

log = logging.getLogger("streamzy.delivery")


def room_channel(room_id: int) -> str:
    return f"r:{room_id}"


class Delivery:
    def __init__(self, sio: socketio.AsyncServer) -> None:
        self._sio = sio
        self._queue: asyncio.Queue[tuple[StoredMessage, ...]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def messages_stored(self, event: MessagesStored) -> None:
        """A committed batch (sequence order), from the event bus: queued, sent in order."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="delivery")
        self._queue.put_nowait(event.messages)

    async def _run(self) -> None:
        while True:
            batch = await self._queue.get()
            for message in batch:
                try:
                    await self._sio.emit("message", wire.message(message),
                                         room=room_channel(message.room_id))
                except Exception:  # one failed emit must not stop later deliveries
                    log.exception("emitting message %s failed", message.id)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def typing(self, room_id: int, users: list[dict[str, Any]]) -> None:
        """Who started typing in the room since its last batch (clients skip themselves)."""
        await self._sio.emit("typing", {"room": room_id, "users": users},
                             room=room_channel(room_id))

    async def presence(self, room_id: int, joined: list[dict[str, Any]], left: list[int],
                       online_count: int) -> None:
        """What changed in the room's online list since its last batch: a delta, never the
        whole list (the join answer carries that)."""
        await self._sio.emit("presence", {"room": room_id, "joined": joined, "left": left,
                                          "online_count": online_count},
                             room=room_channel(room_id))

    async def resync(self) -> None:
        """Ask this process's clients to re-join with since_seq (after a Redis outage)."""
        await self._sio.emit("resync", {}, ignore_queue=True)

    async def restarting(self, spread_seconds: float) -> None:
        """Tell this process's clients the server is going away on purpose (they reconnect
        and catch up with since_seq; nothing they sent or were sent is lost), each after a
        random delay within ``spread_seconds`` so they do not all arrive in the same second."""
        await self._sio.emit("restart", {"reconnect": True,
                                         "spread_seconds": round(spread_seconds, 1)},
                             ignore_queue=True)

    async def kick(self, sid: str, code: str, message: str) -> None:
        """Drop one connection (not the session) after telling it why."""
        await self._sio.emit("kicked", {"code": code, "message": message}, to=sid)
        await self._sio.disconnect(sid)

    async def session_ended(self, sid: str, reason: str) -> None:
        """Tell the client why, then drop the connection."""
        await self._sio.emit("session_ended", {"reason": reason}, to=sid)
        await self._sio.disconnect(sid)
