"""Both rate stores report the budget in use (``backlog``), which RateLimit-* is built from."""

from __future__ import annotations

import secrets

import pytest

from streamzy.guards.ratelimit import Decision, MemoryRateStore, RateStore, RedisRateStore
from tests.conftest import need_service

EXPECTED = [Decision(True, 0.0, backlog=10.0), Decision(True, 0.0, backlog=20.0),
            Decision(True, 0.0, backlog=30.0), Decision(False, 10.0, backlog=30.0)]


async def _run(store: RateStore, key: str) -> list[Decision]:
    return [await store.gcra(key, 1000.0, 10.0, 20.0) for _ in range(4)]


async def test_memory_store_reports_the_backlog() -> None:
    assert await _run(MemoryRateStore(), "k") == EXPECTED


@pytest.mark.services
async def test_redis_store_reports_the_same_backlog() -> None:
    url = need_service("STREAMZY_TEST_REDIS_URL", "Redis")
    store = RedisRateStore(url, prefix=f"streamzy:test:{secrets.token_hex(4)}:")
    try:
        assert await _run(store, "k") == EXPECTED
    finally:
        await store.close()
