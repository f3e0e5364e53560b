"""/metrics is never public on the chat port: 404 without the right token (a wrong one is
audited), off entirely when nothing is configured, and on its own listener with the bind."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from streamzy.app import create_app
from streamzy.clock import ManualClock
from streamzy.config import ConfigError, Settings
from tests.conftest import LiveServer, free_port, start_server
from tests.observability.scrape import BEARER, TOKEN, parse, scrape, scrape_url
from tests.realtime.helpers import connected, make_room
from tests.waiting import wait_until

SettingsFactory = Callable[..., Settings]


async def _not_found_like_any_path(client: httpx.AsyncClient,
                                   headers: dict[str, str] | None = None) -> None:
    refused = await client.get("/metrics", headers=headers or {})
    unknown = await client.get("/no-such-page", headers=headers or {})
    assert refused.status_code == unknown.status_code == 404
    assert "streamzy_" not in refused.text


@pytest.fixture
def server_settings() -> dict[str, Any]:
    return {"metrics_token": TOKEN}


async def test_the_chat_port_answers_404_without_the_token(server: LiveServer) -> None:
    async with server.client() as client:
        await _not_found_like_any_path(client)
        await _not_found_like_any_path(client, {"Authorization": "Bearer wrong-token"})
        await _not_found_like_any_path(client, {"Authorization": f"Basic {TOKEN}"})
        await _not_found_like_any_path(client, {"Authorization": f"Bearer {TOKEN}x"})
        ok = await client.get("/metrics", headers=BEARER)
    assert ok.status_code == 200 and ok.headers["cache-control"] == "no-store"
    assert parse(ok.text).has("streamzy_messages_stored_total")
    # Wrong tokens are audited once per address and window (the repeats are counted when it
    # closes); a request without any Authorization is an ordinary 404.
    rows = await server.audit_rows("metrics_auth_failed")
    assert len(rows) == 1 and rows[0].client_ip == "127.0.0.1"
    assert TOKEN not in rows[0].detail and "wrong-token" not in rows[0].detail


async def test_scrapes_are_rate_limited_per_address(settings_factory: SettingsFactory) -> None:
    live, shutdown = await start_server(
        settings_factory(metrics_token=TOKEN, rate_metrics="2/m"), ManualClock())
    try:
        async with live.client() as client:
            codes = [(await client.get("/metrics", headers=BEARER)).status_code
                     for _ in range(3)]
        assert codes == [200, 200, 429]
    finally:
        await shutdown()


async def test_without_bind_or_token_metrics_are_off(settings_factory: SettingsFactory) -> None:
    live, shutdown = await start_server(settings_factory(), ManualClock())
    try:
        assert not live.services.metrics.enabled and live.services.metrics.registry is None
        async with live.client() as client:
            await _not_found_like_any_path(client)
            await _not_found_like_any_path(client, BEARER)
        room = await make_room(live, "general")  # and counting nothing costs nothing
        alice = await connected(live, "alice", rooms=[room])
        try:
            assert (await alice.send(room, "hi"))["ok"]
        finally:
            await alice.close()
    finally:
        await shutdown()


async def test_the_separate_bind_serves_metrics_off_the_chat_port(
        settings_factory: SettingsFactory) -> None:
    port = free_port()
    live, shutdown = await start_server(
        settings_factory(metrics_bind=f"127.0.0.1:{port}"), ManualClock())
    stopped = False
    try:
        assert live.app.metrics_listener is not None
        assert live.app.metrics_listener.port == port
        room = await make_room(live, "general")
        alice = await connected(live, "alice", rooms=[room])
        try:
            assert (await alice.send(room, "counted"))["ok"]
        finally:
            await alice.close()
        scraped = await scrape_url(f"http://127.0.0.1:{port}/metrics")
        assert scraped.value("streamzy_messages_stored_total") == 1
        assert scraped.value("streamzy_socket_connects_total") == 1
        async with live.client() as client:  # no token configured: the chat port has none
            await _not_found_like_any_path(client)
            await _not_found_like_any_path(client, BEARER)
        await shutdown()
        stopped = True

        def port_free() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", port)) != 0

        await wait_until(port_free, what="the metrics listener to close")
    finally:
        if not stopped:
            await shutdown()


async def test_both_ways_at_once_count_into_one_registry(
        settings_factory: SettingsFactory) -> None:
    port = free_port()
    live, shutdown = await start_server(
        settings_factory(metrics_bind=f"127.0.0.1:{port}", metrics_token=TOKEN), ManualClock())
    try:
        async with live.client() as client:
            await _not_found_like_any_path(client)
        by_token = await scrape(live)
        by_bind = await scrape_url(f"http://127.0.0.1:{port}/metrics")
        assert by_token.names() == by_bind.names()
    finally:
        await shutdown()


async def test_a_metrics_bind_in_use_refuses_the_start(
        settings_factory: SettingsFactory) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = create_app(settings_factory(metrics_bind=f"127.0.0.1:{port}"), ManualClock())
        try:
            with pytest.raises(ConfigError, match="STREAMZY_METRICS_BIND"):
                await app.quart.startup()
            assert "cannot be bound" in app.startup_error
        finally:
            await app.services.close()


@pytest.mark.parametrize("values", [
    {"metrics_token": "short"},
    {"metrics_token": "a" * 40},  # long but not random
    {"metrics_bind": "9464"},
    {"metrics_bind": "127.0.0.1:http"},
    {"metrics_bind": "127.0.0.1:70000"},
])
def test_weak_tokens_and_bad_binds_are_refused(values: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_binds_accept_ipv4_ipv6_and_names() -> None:
    for bind in ("127.0.0.1:9464", "[::1]:9464", "localhost:9464", "10.0.0.5:1"):
        assert Settings(_env_file=None, metrics_bind=bind).metrics_enabled  # type: ignore[call-arg]


def test_every_rate_limit_is_a_pre_bound_rule() -> None:
    from streamzy.metrics import RATE_RULES

    configured = {name[len("rate_"):] for name in Settings.model_fields
                  if name.startswith("rate_")}
    assert configured <= set(RATE_RULES)
