"""Counting for alerts: how many events of a kind and key fell in the last window, and
whether an alert for that kind and key may fire now or is held back by its cool-down.

The window is a sliding estimate from two fixed buckets (the current one, and the previous
one weighted by how much of it still overlaps the window): constant memory per key, one
atomic script in Redis. Time always comes from the caller (the injectable clock); Redis
expiry only collects keys nobody will read again. In memory the counts are per process;
with Redis they are shared, so N processes together cross a threshold once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import Any, Protocol

log = logging.getLogger("streamzy.alerts")
MAX_KEYS = 100_000
REDIS_TIMEOUT = 1.0
REDIS_RETRY_SECONDS = 5.0  # after a Redis failure, count in memory this long
# How long a held-back count is kept without a further alert for its key.
SUPPRESSED_TTL_SECONDS = 7 * 86400


def estimate(current: int, previous: int, now: float, window: float) -> int:
    """Events in the window ending ``now``: this bucket's, plus the previous bucket's
    share that still lies inside the window."""
    into = (now % window) / window
    return current + math.floor(previous * (1.0 - into))


class AlertCounts(Protocol):
    async def hit(self, key: str, now: float, window: float) -> int:
        """Count one event for ``key``; the estimated count in the window ending ``now``."""
        ...

    async def claim(self, key: str, now: float, cooldown: float) -> int | None:
        """May an alert for ``key`` fire now? None when its cool-down holds it back (it
        is counted as suppressed); otherwise the number suppressed since the last one,
        and the cool-down starts again."""
        ...

    async def close(self) -> None: ...


class MemoryAlertCounts:
    """Per-process counts (the embedded default, and the fallback while Redis is away)."""

    def __init__(self) -> None:
        # key -> (bucket, current, previous, window): each kind has its own window, so
        # each entry is judged stale by its own, never by the window of the key being hit.
        self._buckets: dict[str, tuple[int, int, int, float]] = {}
        self._until: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    async def hit(self, key: str, now: float, window: float) -> int:
        bucket = int(now // window)
        found, current, previous, _ = self._buckets.get(key, (bucket, 0, 0, window))
        if found == bucket - 1:
            current, previous = 0, current
        elif found != bucket:
            current, previous = 0, 0
        current += 1
        if len(self._buckets) >= MAX_KEYS and key not in self._buckets:
            self._prune(now)
        self._buckets[key] = (bucket, current, previous, window)
        return estimate(current, previous, now, window)

    def _prune(self, now: float) -> None:
        """Drop entries past their own window; if an attacker rotating addresses still
        fills the table, keep the newest half (down to well under the cap, so this full
        rebuild runs rarely)."""
        self._buckets = {k: v for k, v in self._buckets.items()
                         if v[0] >= int(now // v[3]) - 1}
        if len(self._buckets) >= MAX_KEYS * 9 // 10:
            self._buckets = dict(list(self._buckets.items())[-(MAX_KEYS // 2):])

    async def claim(self, key: str, now: float, cooldown: float) -> int | None:
        if now < self._until.get(key, 0.0):
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return None
        if len(self._until) >= MAX_KEYS:
            self._until = {k: v for k, v in self._until.items() if v > now}
            self._suppressed = {k: v for k, v in self._suppressed.items() if k in self._until}
            if len(self._until) >= MAX_KEYS * 9 // 10:
                self._until = dict(list(self._until.items())[-(MAX_KEYS // 2):])
        self._until[key] = now + cooldown
        return self._suppressed.pop(key, 0)

    async def close(self) -> None:
        self._buckets.clear()


_HIT_LUA = """
local current = redis.call('INCR', KEYS[1])
if current == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local previous = tonumber(redis.call('GET', KEYS[2]) or '0')
return {current, previous}
"""

_CLAIM_LUA = """
local now = tonumber(ARGV[1])
local until_ = tonumber(redis.call('GET', KEYS[1]) or '0')
if now < until_ then
  redis.call('INCR', KEYS[2])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
  return -1
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
local held = tonumber(redis.call('GET', KEYS[2]) or '0')
redis.call('DEL', KEYS[2])
return held
"""


class RedisAlertCounts:
    """Counts shared by every process through Redis; falls back to this process's memory
    while Redis cannot be reached (an alert may then fire once per process)."""

    def __init__(self, url: str, prefix: str = "streamzy:alert:") -> None:
        from redis.asyncio import Redis

        self._redis: Any = Redis.from_url(url, socket_timeout=REDIS_TIMEOUT,
                                          socket_connect_timeout=REDIS_TIMEOUT)
        self._hit = self._redis.register_script(_HIT_LUA)
        self._claim = self._redis.register_script(_CLAIM_LUA)
        self._prefix = prefix
        self._fallback = MemoryAlertCounts()
        self._degraded = False
        # After a failure Redis is left alone for a while: a hung Redis must not cost every
        # audited event a 2 s wait (the alert queue would fill and alerts come late).
        self._retry_at = 0.0

    def _failed(self, exc: Exception, now: float) -> None:
        if not self._degraded:
            log.warning("alert counts: Redis unavailable (%s); counting per process",
                        type(exc).__name__)
        self._degraded = True
        self._retry_at = now + REDIS_RETRY_SECONDS

    async def hit(self, key: str, now: float, window: float) -> int:
        if now < self._retry_at:
            return await self._fallback.hit(key, now, window)
        bucket = int(now // window)
        keys = [f"{self._prefix}n:{key}:{bucket}", f"{self._prefix}n:{key}:{bucket - 1}"]
        try:
            async with asyncio.timeout(REDIS_TIMEOUT * 2):
                current, previous = await self._hit(
                    keys=keys, args=[str(math.ceil(window * 2000) + 1000)])
        except Exception as exc:
            self._failed(exc, now)
            return await self._fallback.hit(key, now, window)
        self._degraded = False
        return estimate(int(current), int(previous), now, window)

    async def claim(self, key: str, now: float, cooldown: float) -> int | None:
        if now < self._retry_at:
            return await self._fallback.claim(key, now, cooldown)
        keys = [f"{self._prefix}cool:{key}", f"{self._prefix}held:{key}"]
        args = [repr(now), repr(now + cooldown), str(math.ceil(cooldown * 1000) + 1000),
                str(SUPPRESSED_TTL_SECONDS)]
        try:
            async with asyncio.timeout(REDIS_TIMEOUT * 2):
                held = int(await self._claim(keys=keys, args=args))
        except Exception as exc:
            self._failed(exc, now)
            return await self._fallback.claim(key, now, cooldown)
        return None if held < 0 else held

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1):
                await self._redis.aclose()
