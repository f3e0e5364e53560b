"""The Redis circuit breakers as a gauge: 0 while calls go through, 1 while failing fast."""

from __future__ import annotations

from collections.abc import Callable

from streamzy.clock import ManualClock
from streamzy.config import Settings
from tests.conftest import free_port, need_service, start_server
from tests.observability.scrape import TOKEN, scrape

SettingsFactory = Callable[..., Settings]


async def test_a_redis_that_does_not_answer_opens_the_circuit(
        settings_factory: SettingsFactory) -> None:
    nothing_there = f"redis://127.0.0.1:{free_port()}/0"
    live, shutdown = await start_server(
        settings_factory(metrics_token=TOKEN, redis_url=nothing_there), ManualClock())
    try:
        # The scrape's own rate limit is the first call that fails: the circuit opens.
        scraped = await scrape(live)
        assert scraped.value("streamzy_redis_circuit_open", circuit="rate_limits") == 1
        assert {"revocations", "fanout", "presence"} <= {
            dict(labels)["circuit"] for name, labels in scraped.samples
            if name == "streamzy_redis_circuit_open"}
    finally:
        await shutdown()


async def test_a_working_redis_keeps_every_circuit_closed(
        settings_factory: SettingsFactory) -> None:
    redis_url = need_service("STREAMZY_TEST_REDIS_URL", "Redis")
    live, shutdown = await start_server(
        settings_factory(metrics_token=TOKEN, redis_url=redis_url), ManualClock())
    try:
        scraped = await scrape(live)
        circuits = {dict(labels)["circuit"]: value for (name, labels), value
                    in scraped.samples.items() if name == "streamzy_redis_circuit_open"}
        assert circuits == {"rate_limits": 0, "revocations": 0, "fanout": 0, "presence": 0}
    finally:
        await shutdown()


async def test_without_redis_there_is_no_circuit(settings_factory: SettingsFactory) -> None:
    live, shutdown = await start_server(settings_factory(metrics_token=TOKEN), ManualClock())
    try:
        scraped = await scrape(live)
        assert "streamzy_redis_circuit_open" in scraped.families  # described, no samples
        assert not any(name == "streamzy_redis_circuit_open" for name, _ in scraped.samples)
    finally:
        await shutdown()
