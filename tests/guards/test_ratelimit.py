"""The GCRA limiter on a manual clock: allow, refuse with a retry time, recover; on the memory
store, on Redis when configured, and with a store that is down."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from streamzy.clock import ManualClock
from streamzy.config import Rate
from streamzy.guards.ratelimit import Decision, MemoryRateStore, RateLimiter, RateStore, RedisRateStore
from tests.conftest import need_service

THREE_A_MINUTE = Rate(3, 60)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.services)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[RateStore]:
    if request.param == "memory":
        chosen: RateStore = MemoryRateStore()
    else:
        url = need_service("STREAMZY_TEST_REDIS_URL", "Redis")
        chosen = RedisRateStore(url, prefix=f"streamzy:test:{uuid.uuid4().hex}:")
    try:
        yield chosen
    finally:
        await chosen.close()


async def hits(limiter: RateLimiter, key: str, n: int, rate: Rate = THREE_A_MINUTE) -> list[bool]:
    return [(await limiter.hit(key, rate)).allowed for _ in range(n)]


async def test_allows_the_budget_then_refuses_with_the_time_to_wait(
        store: RateStore, clock: ManualClock) -> None:
    limiter = RateLimiter(store, clock)
    assert await hits(limiter, "user:1", 3) == [True, True, True]
    refused = await limiter.hit("user:1", THREE_A_MINUTE)
    assert not refused.allowed and not refused.unavailable
    assert refused.retry_after == pytest.approx(20)  # one event per 20 s refills


async def test_recovers_one_event_per_interval(store: RateStore, clock: ManualClock) -> None:
    limiter = RateLimiter(store, clock)
    await hits(limiter, "user:1", 3)
    clock.advance(19)
    assert (await limiter.hit("user:1", THREE_A_MINUTE)).retry_after == pytest.approx(1)
    clock.advance(1)
    assert await hits(limiter, "user:1", 2) == [True, False]  # one came back, not two
    clock.advance(60)
    assert await hits(limiter, "user:1", 4) == [True, True, True, False]  # full again


async def test_refusals_do_not_push_recovery_back(store: RateStore, clock: ManualClock) -> None:
    limiter = RateLimiter(store, clock)
    await hits(limiter, "user:1", 3)
    assert await hits(limiter, "user:1", 50) == [False] * 50  # hammering costs nothing extra
    clock.advance(20)
    assert (await limiter.hit("user:1", THREE_A_MINUTE)).allowed


async def test_keys_have_their_own_budgets(store: RateStore, clock: ManualClock) -> None:
    limiter = RateLimiter(store, clock)
    assert await hits(limiter, "login:198.51.100.1", 4) == [True, True, True, False]
    assert await hits(limiter, "login:198.51.100.2", 3) == [True, True, True]
    assert await hits(limiter, "apply:198.51.100.1", 1) == [True]


class DownStore:
    """A shared store that cannot be reached (Redis down)."""

    def __init__(self) -> None:
        self.up = False
        self.memory = MemoryRateStore()

    async def gcra(self, key: str, now: float, interval: float, tolerance: float) -> Decision:
        if not self.up:
            raise ConnectionError("redis is down")
        return await self.memory.gcra(key, now, interval, tolerance)

    async def close(self) -> None:
        pass


async def test_a_store_outage_fails_closed_for_credentials_only(clock: ManualClock) -> None:
    store = DownStore()
    limiter = RateLimiter(store, clock)
    login = await limiter.hit("login:198.51.100.1", THREE_A_MINUTE, fail_closed=True)
    assert not login.allowed and login.unavailable and login.retry_after > 0
    assert limiter.degraded
    # Chat keeps a per-process budget meanwhile, still limited.
    assert await hits(limiter, "messages:7", 4) == [True, True, True, False]
    store.up = True
    assert (await limiter.hit("login:198.51.100.1", THREE_A_MINUTE, fail_closed=True)).allowed
    assert not limiter.degraded


def test_rates_parse_into_count_and_period() -> None:
    assert Rate.parse("10/5m") == Rate(10, 300)
    assert Rate.parse("30/m") == Rate(30, 60)
    for bad in ("", "0/m", "ten/m", "10/5w"):
        with pytest.raises(ValueError):
            Rate.parse(bad)
