"""Who is in which room on this process: Socket.IO room membership, the room index, the
roster of people online, and the batches that tell each room what changed.

A join costs O(1) here whatever the room's size: it enters the Socket.IO room, counts the
person in the roster and notes the change for the room's next batch. The joining client
learns who is online from its join answer (``snapshot``); everyone else hears of the change
in the room's next batch (``room_batches.py``), at most one per room per interval.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import Any

import socketio

from streamzy.realtime.delivery import Delivery, room_channel
from streamzy.realtime.principal import Connections, Principal
from streamzy.realtime.room_batches import Batch, RoomBatches
from streamzy.realtime.room_index import RoomIndex
from streamzy.realtime.roster import Roster
from streamzy.realtime.shared_roster import SharedRoster

log = logging.getLogger("streamzy.presence")


class Gone(Exception):
    """The socket disconnected while its join was on the way (nothing was entered)."""


class Presence:
    def __init__(self, sio: socketio.AsyncServer, connections: Connections,
                 delivery: Delivery, *, interval: float = 1.0, list_limit: int = 100,
                 typing_limit: int = 100, fanout: int = 500, redis_url: str = "",
                 dead_after: float = 20.0) -> None:
        self._sio = sio
        self._connections = connections
        self._delivery = delivery
        self._index = RoomIndex()
        self._roster = Roster()
        # A room's batches go out at most every online/fanout seconds: the presence updates
        # of a room cost at most ``fanout`` deliveries a second, however large it is.
        self._batches = RoomBatches(interval, lambda room_id: self._count(room_id) / fanout)
        self._list_limit = list_limit
        self._typing_limit = typing_limit
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # With several processes, Redis counts who is online in the whole cluster.
        self._shared = (SharedRoster(redis_url, self._note, self._roster.holding,
                                     dead_after=dead_after) if redis_url else None)

    @property
    def shared(self) -> SharedRoster | None:
        """The cluster-wide roster in Redis (None without Redis)."""
        return self._shared

    async def enter(self, sid: str, principal: Principal, room_id: int) -> None:
        """Put a socket in the room. Raises Gone if it disconnected meanwhile: checked with
        no await before the index is updated, so a gone socket can never be left indexed
        (its disconnect already ran ``forget``) nor reach python-socketio's KeyError."""
        if not self._sio.manager.is_connected(sid, "/"):
            raise Gone
        await self._sio.enter_room(sid, room_channel(room_id))
        self.record_joined(sid, principal, room_id)

    def record_joined(self, sid: str, principal: Principal, room_id: int) -> None:
        """Note that ``sid`` joined (membership checked), so later events skip the check.
        ``enter`` does this after the transport joined; benchmarks use it on its own."""
        if self._index.joined(sid, room_id):
            return  # joined again (a resume): already counted
        self._index.add(sid, room_id)
        if self._roster.add(room_id, principal.user_id, principal.public()):
            if self._shared is None:
                self._note(room_id, principal.user_id, principal.public(), True)
            else:  # online in the cluster? Redis answers, then the change is noted
                self._shared.enter(room_id, principal.user_id, principal.public())

    def _left(self, sid: str, room_id: int, principal: Principal) -> None:
        self._index.discard(sid, room_id)
        self._went(room_id, principal)

    def _went(self, room_id: int, principal: Principal) -> None:
        if self._roster.remove(room_id, principal.user_id):
            if self._shared is None:
                self._note(room_id, principal.user_id, principal.public(), False)
            else:
                self._shared.leave(room_id, principal.user_id)

    async def leave_everywhere_as(self, user_id: int, room_id: int) -> None:
        """Take every socket of ``user_id`` on this process out of the room."""
        for sid in self._index.members(room_id):
            who = self._connections.get(sid)
            if who is not None and who.user_id == user_id:
                await self._sio.leave_room(sid, room_channel(room_id))
                self._left(sid, room_id, who)

    async def leave_everyone(self, room_id: int) -> None:
        """Take every socket on this process out of the room (it was deleted)."""
        for sid in list(self._index.members(room_id)):
            who = self._connections.get(sid)
            await self._sio.leave_room(sid, room_channel(room_id))
            if who is not None:
                self._left(sid, room_id, who)
            else:
                self._index.discard(sid, room_id)

    def joined(self, sid: str, room_id: int) -> bool:
        return self._index.joined(sid, room_id)

    def forget(self, sid: str, principal: Principal | None) -> None:
        """A socket left (Socket.IO itself takes it out of its rooms on disconnect)."""
        for room_id in self._index.remove(sid):
            if principal is not None:
                self._went(room_id, principal)

    async def snapshot(self, room_id: int) -> tuple[list[dict[str, Any]], int]:
        """For a join's answer: up to the list limit of the people online, and how many
        (in the cluster when Redis answers in time; otherwise on this process). Without
        Redis it does not suspend, so nothing can be sent between it and the answer."""
        if self._shared is not None:
            try:
                return await self._shared.listing(room_id, self._list_limit)
            except Exception:
                log.warning("presence: Redis did not answer; listing this process only")
        return self._roster.first(room_id, self._list_limit), self._roster.count(room_id)

    def _count(self, room_id: int) -> int:
        shared = self._shared.count(room_id) if self._shared is not None else None
        return self._roster.count(room_id) if shared is None else shared

    def typing(self, room_id: int, principal: Principal) -> bool:
        """Queue a typing indicator; False if the room is too large to show them."""
        if self._count(room_id) > self._typing_limit:
            return False
        if self._batches.typing(room_id, principal.public(), self._now()):
            self._wake.set()
        return True

    def rooms_indexed(self) -> int:
        return self._index.size() + self._roster.size() + self._batches.size()

    # -- the room batches -------------------------------------------------------------
    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _note(self, room_id: int, user_id: int, public: dict[str, Any], online: bool) -> None:
        """Someone came online or went offline in the room (the whole cluster's view when
        Redis counts): it goes into the room's next batch."""
        if self._batches.presence(room_id, user_id, public, online, self._now()):
            self._wake.set()

    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="presence-batches")
        if self._shared is not None:
            await self._shared.start()

    async def stop(self) -> None:
        if self._shared is not None:
            await self._shared.stop()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            due = self._batches.next_due()
            delay = None if due is None else due - self._now()
            if delay is None or delay > 0:
                self._wake.clear()
                with suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                continue
            for batch in self._batches.take_due(self._now()):
                try:
                    await self._send(batch)
                except Exception:  # one failed batch must not stop the others
                    log.exception("sending the presence batch of room %s failed",
                                  batch.room_id)

    async def _send(self, batch: Batch) -> None:
        # Typing first: whoever has the presence part of a batch has its typing part too.
        if batch.typing:
            await self._delivery.typing(batch.room_id, batch.typing)
        if batch.joined or batch.left:
            await self._delivery.presence(batch.room_id, batch.joined[:self._list_limit],
                                          batch.left, self._count(batch.room_id))
