"""Which live sockets belong to which session or bot token, and ending them on revocation.

Every process keeps its own sockets. When Redis is configured, a revocation is published on
a channel so that every process drops its sockets of that session, wherever the logout,
expiry, disable or revoke happened.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable

log = logging.getLogger("streamzy.realtime")
CHANNEL = "streamzy:revocations"
Drop = Callable[[str, str], Awaitable[None]]  # (sid, reason)
Resync = Callable[[], Awaitable[None]]


class SocketRegistry:
    def __init__(self, drop: Drop, redis_url: str = "", resync: Resync | None = None) -> None:
        self._drop = drop
        self._resync = resync
        self._by_key: dict[str, set[str]] = defaultdict(set)
        self._keys_of: dict[str, set[str]] = defaultdict(set)
        self._redis_url = redis_url
        self._redis = None
        self._listener: asyncio.Task[None] | None = None

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
        if self._redis is not None:
            try:
                await self._redis.publish(CHANNEL, json.dumps({"keys": keys, "reason": reason}))
                return
            except Exception:  # Redis down: still drop our own sockets
                log.warning("revocation fan-out over Redis failed; dropping local sockets only")
        await self._end_local(keys, reason)

    async def announce_resync(self) -> None:
        """Every process tells its clients to re-join with since_seq (Redis came back)."""
        if self._redis is not None:
            try:
                await self._redis.publish(CHANNEL, json.dumps({"resync": True}))
                return
            except Exception:
                log.warning("resync announcement over Redis failed")
        if self._resync is not None:
            await self._resync()

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

        self._redis = Redis.from_url(self._redis_url, socket_connect_timeout=2)
        self._listener = asyncio.create_task(self._listen(), name="revocation-listener")

    async def _listen(self) -> None:
        while True:
            try:
                pubsub = self._redis.pubsub()  # type: ignore[union-attr]
                await pubsub.subscribe(CHANNEL)
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    try:
                        data = json.loads(message["data"])
                        if data.get("resync") and self._resync is not None:
                            await self._resync()
                            continue
                        await self._end_local([str(k) for k in data["keys"]], str(data["reason"]))
                    except (ValueError, KeyError, TypeError):
                        log.warning("ignored a malformed revocation message")
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("revocation listener lost Redis; retrying in 1 s")
                await asyncio.sleep(1)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            try:
                await self._listener
            except asyncio.CancelledError:
                pass
        if self._redis is not None:
            await self._redis.aclose()
