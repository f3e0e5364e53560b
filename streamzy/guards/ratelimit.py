"""Rate limits for both edges: one GCRA implementation over a memory or Redis store.

GCRA keeps a single "theoretical arrival time" per key, so a check-and-update is one
atomic step (a dict update in memory, one Lua script in Redis) and keys expire by
themselves. Time comes from the injectable clock, so tests never sleep.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from streamzy.clock import Clock
from streamzy.config import Rate
from streamzy.guards.circuit import Circuit
from streamzy.metrics import Metrics

log = logging.getLogger("streamzy.ratelimit")
FAIL_CLOSED = frozenset({"login", "apply"})  # limits that guard credentials and admission


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float = 0.0
    unavailable: bool = False  # refused because the shared store could not be reached
    backlog: float = 0.0  # seconds of budget in use after this decision (TAT - now)


class RateStore(Protocol):
    async def gcra(self, key: str, now: float, interval: float, tolerance: float) -> Decision:
        """Atomically admit or refuse one event for ``key``."""
        ...

    async def close(self) -> None: ...

    def forget(self, key: str) -> None:
        """Drop ``key``'s state now (it will never be hit again)."""
        ...

    def held(self, prefix: str) -> int:
        """How many keys starting with ``prefix`` this process holds in memory."""
        ...


class MemoryRateStore:
    """Per-process store (the embedded default)."""

    MAX_KEYS = 100_000

    def __init__(self) -> None:
        self._tat: dict[str, float] = {}

    async def gcra(self, key: str, now: float, interval: float, tolerance: float) -> Decision:
        tat = max(self._tat.get(key, now), now)
        if tat - now > tolerance:
            return Decision(False, tat - tolerance - now, backlog=tat - now)
        if len(self._tat) >= self.MAX_KEYS:
            self._tat = {k: v for k, v in self._tat.items() if v > now}
        self._tat[key] = tat + interval
        return Decision(True, backlog=tat + interval - now)

    def forget(self, key: str) -> None:
        self._tat.pop(key, None)

    def held(self, prefix: str) -> int:
        return sum(1 for key in self._tat if key.startswith(prefix))

    async def close(self) -> None:
        self._tat.clear()


_GCRA_LUA = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
if tat < now then tat = now end
if tat - now > tolerance then
  return {0, tostring(tat - tolerance - now), tostring(tat - now)}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
return {1, '0', tostring(new_tat - now)}
"""


class RedisRateStore:
    """Shared by every process: one Lua script makes check-and-update atomic and expiring."""

    def __init__(self, url: str, prefix: str = "streamzy:rl:") -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        self._script = self._redis.register_script(_GCRA_LUA)
        self._prefix = prefix
        # Checked twice per socket event: a hung Redis must cost one short timeout, then
        # fail fast (the limiter falls back or fails closed) until a probe succeeds.
        self.circuit = Circuit("Redis (rate limits)", timeout=0.5, cooldown=1.0)

    async def gcra(self, key: str, now: float, interval: float, tolerance: float) -> Decision:
        allowed, retry, backlog = await self.circuit.call(lambda: self._script(
            keys=[self._prefix + key], args=[repr(now), repr(interval), repr(tolerance)]))
        return Decision(bool(int(allowed)), float(retry), backlog=float(backlog))

    def forget(self, key: str) -> None:
        """Nothing to do: Redis expires every key once its budget has refilled."""

    def held(self, prefix: str) -> int:
        return 0

    async def close(self) -> None:
        await self._redis.aclose()


class RateLimiter:
    """Admits events per key at a configured rate.

    If the shared store (Redis) is unreachable, limits guarding credentials fail closed
    (refuse, as if exhausted) and the rest fall back to this process's own memory, so chat
    keeps working with per-process budgets until Redis returns.
    """

    UNAVAILABLE_RETRY = 5.0

    def __init__(self, store: RateStore, clock: Clock, *,
                 metrics: Metrics | None = None) -> None:
        self.store = store
        self._clock = clock
        self._metrics = metrics or Metrics()
        self._fallback = MemoryRateStore()
        self.degraded = False

    async def hit(self, key: str, rate: Rate, *, fail_closed: bool = False,
                  rule: str = "") -> Decision:
        """One event for ``key``; ``rule`` names the limit in the metrics (default: the
        key's first part, as in ``login:ip:...``)."""
        decision = await self._decide(key, rate, fail_closed)
        if not decision.allowed and not decision.unavailable:
            self._metrics.rate_limited(rule or key.partition(":")[0])
        return decision

    async def _decide(self, key: str, rate: Rate, fail_closed: bool) -> Decision:
        interval = rate.period / rate.count
        tolerance = rate.period - interval
        now = self._clock.now().timestamp()
        try:
            decision = await self.store.gcra(key, now, interval, tolerance)
        except Exception:  # the shared store is down (network, timeout, Redis error)
            if not self.degraded:
                log.warning("rate-limit store unavailable: failing closed for credentials, "
                            "per-process limits for the rest")
            self.degraded = True
            if fail_closed:
                return Decision(False, self.UNAVAILABLE_RETRY, unavailable=True)
            return await self._fallback.gcra(key, now, interval, tolerance)
        if self.degraded:
            log.warning("rate-limit store is back")
            self.degraded = False
        return decision

    def forget(self, key: str) -> None:
        """A key that will never be hit again (a closed socket's event budget): dropped at
        once. The memory store would otherwise keep one entry per socket that ever
        connected until it reached MAX_KEYS (measured: benchmarks ``--waves``)."""
        self.store.forget(key)
        self._fallback.forget(key)

    def held(self, prefix: str) -> int:
        """Keys under ``prefix`` held in this process's memory (tests, benchmarks)."""
        return self.store.held(prefix) + self._fallback.held(prefix)
