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
from streamzy.metrics import Metrics
from streamzy.services.events import MessageChanged, MessagesStored
from streamzy.services.message_state import StoredMessage

log = logging.getLogger("streamzy.delivery")
ACTIVITY_SECONDS = 1.0


def room_channel(room_id: int) -> str:
    """The sockets that joined the room (its messages, presence, typing)."""
    return f"r:{room_id}"


def activity_channel(room_id: int) -> str:
    """The sockets of members watching the room from elsewhere (unread badges)."""
    return f"a:{room_id}"


def user_channel(user_id: int) -> str:
    """The watching sockets of one person (mentions of them)."""
    return f"u:{user_id}"


class Delivery:
    def __init__(self, sio: socketio.AsyncServer, fanout: int = 500,
                 metrics: Metrics | None = None) -> None:
        self._sio = sio
        self._delivered = (metrics or Metrics()).message_delivered
        self._queue: asyncio.Queue[MessagesStored | MessageChanged] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._activity: dict[int, int] = {}  # room -> newest seq not yet announced
        self._activity_task: asyncio.Task[None] | None = None
        self._next_at: dict[int, float] = {}  # room -> when its next activity may go
        self.fanout = fanout

    def _ensure(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="delivery")

    async def messages_stored(self, event: MessagesStored) -> None:
        """A committed batch (sequence order), from the event bus: queued, sent in order."""
        self._ensure()
        self._queue.put_nowait(event)

    async def message_changed(self, event: MessageChanged) -> None:
        """An edit, delete or reaction: in the same queue, so it never overtakes the
        message it changes."""
        self._ensure()
        self._queue.put_nowait(event)

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            if isinstance(event, MessageChanged):
                await self._emit_change(event)
                continue
            for message in event.messages:
                try:
                    await self._sio.emit("message", wire.message(message),
                                         room=room_channel(message.room_id))
                    self._delivered()
                    await self._notify(message)
                except Exception:  # one failed emit must not stop later deliveries
                    log.exception("emitting message %s failed", message.id)

    async def _emit_change(self, event: MessageChanged) -> None:
        try:
            await self._sio.emit("message_changed", {
                "room": event.room_id, "change_seq": event.change_seq, "kind": event.kind,
                "message": wire.message(event.message)}, room=room_channel(event.room_id))
        except Exception:
            log.exception("emitting change %s failed", event.change_seq)

    async def _notify(self, message: StoredMessage) -> None:
        """Badges and notifications elsewhere: the room's activity (coalesced), and a
        notice to each person named and, in a DM or for @room, to the watching members."""
        self._activity[message.room_id] = max(message.seq,
                                              self._activity.get(message.room_id, 0))
        if self._activity_task is None or self._activity_task.done():
            self._activity_task = asyncio.create_task(self._announce_activity(),
                                                      name="activity")
        if not (message.mentions or message.mentions_room or message.in_dm):
            return
        sent = wire.message(message)
        notice = {"room": message.room_id, "room_name": message.room_name,
                  "message_id": message.id, "seq": message.seq, "sender": sent["sender"],
                  "text": sent["text"], "kind": "mention"}
        named = set(message.mentions)
        # In a DM every other member hears of it (on their own channel: a DM opened after
        # their page last watched is not in their watch list yet), once, as a mention when
        # named; elsewhere the people named, and watchers of the room for @room.
        for user_id in message.dm_members or message.mentions:
            if user_id == message.sender_id:
                continue
            kind = "mention" if user_id in named or not message.in_dm else "dm"
            await self._sio.emit("notify", {**notice, "kind": kind},
                                 room=user_channel(user_id))
        if message.mentions_room and not message.in_dm:
            await self._sio.emit("notify", notice, room=activity_channel(message.room_id))

    async def _announce_activity(self) -> None:
        """At most one ``activity`` per room per ACTIVITY_SECONDS (longer in rooms watched
        by many: their batches are spaced by ``watchers / fanout``): a busy room's watchers
        hear its newest sequence number, not every message."""
        loop = asyncio.get_running_loop()
        while self._activity:
            now = loop.time()
            for room_id in [r for r in self._activity if self._next_at.get(r, 0.0) <= now]:
                seq = self._activity.pop(room_id)
                channel = activity_channel(room_id)
                try:
                    await self._sio.emit("activity", {"room": room_id, "last_seq": seq},
                                         room=channel)
                except Exception:
                    log.exception("announcing activity in room %s failed", room_id)
                watchers = len(self._sio.manager.rooms.get("/", {}).get(channel, ()))
                self._next_at[room_id] = now + max(ACTIVITY_SECONDS, watchers / self.fanout)
            if len(self._next_at) > 10_000:  # forget rooms long quiet
                self._next_at = {r: t for r, t in self._next_at.items() if t > now}
            if self._activity:
                due = min(self._next_at.get(r, now) for r in self._activity)
                await asyncio.sleep(max(0.05, due - loop.time()))

    async def close(self) -> None:
        for task in (self._task, self._activity_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._task = self._activity_task = None

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
