"""Alerts without a server: an audit write failure raises one alert and the alert's own
failed write does not feed it; counts and cool-downs are shared through Redis; the webhook
settings are validated."""

from __future__ import annotations

import os
from typing import Any

import pytest
from pydantic import ValidationError

from streamzy.config import Settings
from streamzy.services.alert_counts import MemoryAlertCounts, RedisAlertCounts, estimate
from streamzy.wiring import Services
from tests.conftest import CLIENT, need_service


async def test_an_audit_write_failure_alerts_once_and_the_alert_never_feeds_itself(
        services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("database away")

    monkeypatch.setattr(services.db, "run_transaction", broken)
    with pytest.raises(ConnectionError):
        await services.audit("login_succeeded", CLIENT, None)
    await services.alerts.settled()
    assert [a.kind for a in services.alerts.fired] == ["audit_write_failures"]
    # the alert's own row failed too (write_failures counts it) but raised nothing more
    assert services.audit_log.write_failures == 2
    with pytest.raises(ConnectionError):
        await services.audit("login_succeeded", CLIENT, None)
    await services.alerts.settled()
    assert len(services.alerts.fired) == 1  # cool-down: counted, not sent again


async def test_unreadable_messages_are_watched(services: Services) -> None:
    await services.audit("message_unreadable", CLIENT, None, room_id=7, message_id=1)
    await services.alerts.settled()
    [fired] = services.alerts.fired
    assert (fired.kind, fired.key, fired.count) == ("unreadable_messages", "room 7", 1)


async def test_keys_from_requests_are_escaped(services: Services) -> None:
    from streamzy.guards.context import RequestInfo

    info = RequestInfo("<script>" + "9" * 50, "ua", "")  # the column holds 64
    for _ in range(20):
        await services.audit("login_failed", info, None, reason="unknown_user")
    await services.alerts.settled()
    [fired] = services.alerts.fired
    assert "<" not in fired.key and len(fired.key) <= 100


def test_the_sliding_estimate_weighs_the_previous_bucket() -> None:
    assert estimate(3, 10, now=600.0, window=600.0) == 13  # the window starts now
    assert estimate(3, 10, now=900.0, window=600.0) == 8  # half the previous bucket left
    assert estimate(3, 10, now=1199.0, window=600.0) == 3


async def test_memory_counts_and_cooldown() -> None:
    counts = MemoryAlertCounts()
    assert [await counts.hit("k", 100.0, 600) for _ in range(3)] == [1, 2, 3]
    assert await counts.claim("k", 100.0, 900) == 0
    assert await counts.claim("k", 200.0, 900) is None
    assert await counts.claim("k", 300.0, 900) is None
    assert await counts.claim("k", 1001.0, 900) == 2


async def test_a_full_table_keeps_live_counts_of_longer_windows(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Failed sign-ins count over 600 s, refused sockets over 300 s. An attacker filling
    # the table with refused sockets from rotating addresses must not wipe the live
    # sign-in counts (stale entries are judged by their own window).
    monkeypatch.setattr("streamzy.services.alert_counts.MAX_KEYS", 4)
    counts = MemoryAlertCounts()
    for _ in range(3):
        await counts.hit("signin:alice", 650.0, 600)
    await counts.hit("signin:bob", 650.0, 600)
    await counts.hit("sockets:198.51.100.1", 650.0, 300)
    await counts.hit("sockets:198.51.100.2", 950.0, 300)  # the table is full here
    assert await counts.hit("signin:alice", 950.0, 600) == 4


async def test_a_hung_redis_is_left_alone_for_a_while() -> None:
    # Nothing listens on port 9: each call would wait for its timeout. After one failure
    # the counts go to memory at once until the retry time.
    counts = RedisAlertCounts("redis://127.0.0.1:9/0")
    try:
        assert await counts.hit("k", 100.0, 600) == 1  # failed over to memory
        assert counts._retry_at > 100.0
        assert await counts.hit("k", 101.0, 600) == 2  # no Redis round trip this time
    finally:
        await counts.close()


async def test_redis_shares_counts_and_cooldown_between_processes() -> None:
    url = need_service("STREAMZY_TEST_REDIS_URL", "Redis")
    prefix = f"streamzy:test-alert:{os.getpid()}:"
    first, second = RedisAlertCounts(url, prefix), RedisAlertCounts(url, prefix)
    try:
        assert await first.hit("k", 1000.0, 600) == 1
        assert await second.hit("k", 1001.0, 600) == 2
        assert await first.claim("k", 1001.0, 900) == 0
        assert await second.claim("k", 1002.0, 900) is None  # the other process fired it
        assert await second.claim("k", 1902.0, 900) == 1
    finally:
        await first.close()
        await second.close()


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize("values, problem", [
    ({"alert_webhook_url": "ftp://hooks.example.org/x", "alert_webhook_secret": "s" * 32},
     "http"),
    ({"alert_webhook_url": "https://hooks.example.org/x"}, "SECRET"),
    ({"alert_webhook_url": "https://u:p@hooks.example.org/x", "alert_webhook_secret": "s" * 32},
     "credentials"),
    ({"env": "production", "alert_webhook_url": "http://hooks.example.org/x",
      "alert_webhook_secret": "s" * 32}, "https"),
    ({"alert_lockouts": "often"}, "rate"),
])
def test_bad_alert_settings_are_refused(values: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        settings(**values)


def test_good_alert_settings() -> None:
    assert settings(env="production", alert_webhook_url="http://127.0.0.1:9000/hook",
                    alert_webhook_secret="s" * 32).alert_webhook_url
    assert settings(alert_lockouts="off").alert_threshold("lockouts") is None
    assert settings().alert_threshold("failed_signins_per_address").count == 20
