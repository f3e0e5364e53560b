"""A Redis pub/sub subscription that notices when it was lost and comes back within ~1 s.

python-socketio's own Redis listener retries with a backoff that grows to 60 s and never
tells anyone that messages went by while it was away; that was a silent gap. This one:

- re-subscribes every RETRY seconds while Redis is away (restarted, unreachable, hung);
- checks a silent subscription by pinging the server (a stopped, not dead, Redis keeps the
  TCP connection open and just says nothing);
- after re-subscribing following a loss, calls ``on_resubscribed``: the owner tells its
  own clients to catch up from the database (what they missed is stored, not lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

log = logging.getLogger("streamzy.realtime")
RETRY = 0.25  # seconds between attempts while Redis is away
CHECK_EVERY = 2.0  # seconds of silence before the server is pinged
TIMEOUT = 1.0  # for connecting, subscribing and the ping


class Subscription:
    def __init__(self, url: str, channel: str,
                 on_resubscribed: Callable[[], Awaitable[None]] | None = None) -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(url, socket_connect_timeout=TIMEOUT)
        self.channel = channel
        self.on_resubscribed = on_resubscribed
        self.losses = 0  # times the subscription was lost (visible in tests and /readyz)

    async def messages(self) -> AsyncIterator[bytes]:
        """The channel's message payloads, forever; survives Redis going away."""
        lost = False
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                async with asyncio.timeout(TIMEOUT):
                    await pubsub.subscribe(self.channel)
                if lost:
                    lost = False
                    log.warning("Redis subscription %s is back", self.channel)
                    if self.on_resubscribed is not None:
                        await self.on_resubscribed()
                async for data in self._receive(pubsub):
                    yield data
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not lost:
                    self.losses += 1
                    log.warning("Redis subscription %s lost (%s); retrying every %.2f s",
                                self.channel, type(exc).__name__, RETRY)
                lost = True
                await asyncio.sleep(RETRY)
            finally:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(TIMEOUT):
                        await pubsub.aclose()

    async def _receive(self, pubsub: Any) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        heard = loop.time()
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
            if message is not None:
                heard = loop.time()
                if message.get("type") == "message":
                    yield message["data"]
            elif loop.time() - heard >= CHECK_EVERY:
                async with asyncio.timeout(TIMEOUT):  # a hung server fails here
                    await self._redis.ping()
                heard = loop.time()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(TIMEOUT):
                await self._redis.aclose()
