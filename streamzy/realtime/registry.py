"""Which live sockets belong to which session or bot token, and ending them on revocation.

Every process keeps its own sockets. When Redis is configured, a revocation is published on
a channel so that every process drops its sockets of that session, wherever the logout,
expiry, disable or revoke happened. Publishing goes through a circuit breaker (a hung Redis
costs one short timeout, then the revocation is applied locally at once); a process whose
subscription was lost runs a session sweep as soon as it is back (``on_resubscribed``), so
revocations it missed take effect then, and within the sweep interval while Redis is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from streamzy.guards.circuit import Circuit
from streamzy.realtime.subscription import Subscription

log = logging.getLogger("streamzy.realtime")
CHANNEL = "streamzy:revocations"
Drop = Callable[[str, str], Awaitable[None]]  # (sid, reason)
Resync = Callable[[], Awaitable[None]]
LeaveRoom = Callable[[int, int], Awaitable[None]]  # (user id, room id)
RoomChanged = Callable[[int], None]  # (room id)
RoomGone = Callable[[int], Awaitable[None]]  # (room id)
UNSENT_MAX = 10_000  # room notices kept while Redis is away, sent once it is back
PUBLISH_TIMEOUT = 0.5


class SocketRegistry:
    def __init__(self, drop: Drop, redis_url: str = "", resync: Resync | None = None) -> None:
        self._drop = drop
        self._resync = resync
        self._by_key: dict[str, set[str]] = defaultdict(set)
        self._keys_of: dict[str, set[str]] = defaultdict(set)
        self._redis_url = redis_url
        self._redis: Any = None
        self._circuit = Circuit("Redis (revocations)", timeout=PUBLISH_TIMEOUT, cooldown=1.0)
        self.subscription: Subscription | None = None
        self.on_resubscribed: Resync | None = None  # e.g. an immediate session sweep
        self.on_leave_room: LeaveRoom | None = None  # a removed member's sockets leave
        self.on_room_changed: RoomChanged | None = None  # forget a room's cached rules
        self.on_room_gone: RoomGone | None = None  # a deleted room's sockets all leave
        self._unsent: list[dict[str, Any]] = []
        self._listener: asyncio.Task[None] | None = None

    @property
    def circuit(self) -> Circuit:
        """The breaker on revocation publishes (its state is a metric)."""
        return self._circuit

    def add(self, sid: str, *keys: str) -> None:
        for key in keys:
            self._by_key[key].add(sid)
            self._keys_of[sid].add(key)

    def remove(self, sid: str) -> None:
        for key in self._keys_of.pop(sid, set()):
            sids = self._by_key.get(key)
            if sids is not None:
                sids.discard(sid)
                if not sids:
                    del self._by_key[key]

    def size(self) -> int:
        """Sockets and keys held (0 once every socket is removed)."""
        return len(self._by_key) + len(self._keys_of)

    def sids(self, key: str) -> set[str]:
        return set(self._by_key.get(key, ()))

    async def end(self, keys: list[str], reason: str) -> None:
        """Drop every socket of ``keys`` in every process."""
        if await self._publish({"keys": keys, "reason": reason}):
            return
        await self._end_local(keys, reason)  # Redis down: our own sockets at least, at once

    async def leave_room(self, user_id: int, room_id: int) -> None:
        """Take every socket of ``user_id`` out of the room in every process (a kick or a
        ban): here at once, elsewhere through Redis (this process hears it again: harmless)."""
        await self._leave_local(user_id, room_id)
        await self._publish_or_keep({"leave_room": [user_id, room_id]})

    async def room_gone(self, room_id: int) -> None:
        """Take every socket out of a deleted room in every process: here at once,
        elsewhere through Redis (kept while Redis is away, like a kick)."""
        await self._room_gone_local(room_id)
        await self._publish_or_keep({"room_gone": room_id})

    async def _room_gone_local(self, room_id: int) -> None:
        if self.on_room_gone is not None:
            try:
                await self.on_room_gone(room_id)
            except Exception:
                log.exception("taking sockets out of deleted room %s failed", room_id)

    async def room_changed(self, room_id: int) -> None:
        """Every other process forgets what it cached of the room's rules (mutes, roles,
        archive, slow mode); this one already has."""
        await self._publish_or_keep({"room_changed": room_id})

    async def _publish_or_keep(self, message: dict[str, Any]) -> None:
        """Publish; while Redis is away keep the notice and send it once it is back (a
        kick must still reach the other processes' sockets)."""
        if self._redis is None:
            return
        if self._unsent:
            await self._send_unsent()
        if not await self._publish(message) and len(self._unsent) < UNSENT_MAX:
            self._unsent.append(message)

    async def _send_unsent(self) -> None:
        unsent, self._unsent = self._unsent, []
        for index, message in enumerate(unsent):
            if not await self._publish(message):
                self._unsent = unsent[index:] + self._unsent
                return

    async def _leave_local(self, user_id: int, room_id: int) -> None:
        if self.on_leave_room is not None:
            try:
                await self.on_leave_room(user_id, room_id)
            except Exception:
                log.exception("taking sockets out of room %s failed", room_id)

    async def announce_resync(self) -> None:
        """Every process tells its clients to re-join with since_seq (Redis came back)."""
        if await self._publish({"resync": True}):
            return
        if self._resync is not None:
            await self._resync()

    async def _publish(self, message: dict[str, Any]) -> bool:
        """True when Redis took the message (every process, this one included, gets it)."""
        if self._redis is None:
            return False
        redis = self._redis
        try:
            await self._circuit.call(lambda: redis.publish(CHANNEL, json.dumps(message)))
        except Exception:
            log.warning("revocation fan-out over Redis failed; acting on local sockets only")
            return False
        return True

    async def _end_local(self, keys: list[str], reason: str) -> None:
        for key in keys:
            for sid in self.sids(key):
                try:
                    await self._drop(sid, reason)
                except Exception:
                    log.exception("dropping socket failed")

    async def start(self) -> None:
        if not self._redis_url:
            return
        from redis.asyncio import Redis

        self._redis = Redis.from_url(self._redis_url, socket_connect_timeout=1)
        self.subscription = Subscription(self._redis_url, CHANNEL, self._resubscribed)
        self._listener = asyncio.create_task(self._listen(), name="revocation-listener")

    async def _resubscribed(self) -> None:
        await self._send_unsent()
        if self.on_resubscribed is not None:
            await self.on_resubscribed()

    async def _listen(self) -> None:
        if self.subscription is None:
            return
        async for payload in self.subscription.messages():
            try:
                data = json.loads(payload)
                if data.get("resync") and self._resync is not None:
                    await self._resync()
                    continue
                if "leave_room" in data:
                    user_id, room_id = data["leave_room"]
                    await self._leave_local(int(user_id), int(room_id))
                    continue
                if "room_gone" in data:
                    await self._room_gone_local(int(data["room_gone"]))
                    continue
                if "room_changed" in data:
                    if self.on_room_changed is not None:
                        self.on_room_changed(int(data["room_changed"]))
                    continue
                await self._end_local([str(k) for k in data["keys"]], str(data["reason"]))
            except (ValueError, KeyError, TypeError, AttributeError):
                log.warning("ignored a malformed revocation message")

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self.subscription is not None:
            await self.subscription.close()
        if self._redis is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await self._redis.aclose()
