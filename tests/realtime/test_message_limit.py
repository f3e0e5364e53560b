"""One message limit (STREAMZY_MESSAGE_MAX_CHARS), one error for it, and a transport that
lets every message within it through to be answered, however it is encoded."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from streamzy.config import Settings
from streamzy.realtime.server import max_packet_bytes
from tests.conftest import ROOT, LiveServer, start_server
from tests.realtime.helpers import ChatClient, connected, make_room
from tests.realtime.test_bots import make_bot

ASTRAL = "\U0001f600"  # python-socketio's client sends it as \ud83d\ude00: 12 bytes


def too_long_message(limit: int) -> str:
    return f"Messages are limited to {limit} characters."


async def lives(client: ChatClient, room: int) -> None:
    assert client.sio.connected
    assert (await client.send(room, "the connection still works"))["ok"]


async def test_one_over_the_limit_in_the_widest_encoding_is_answered(
        server: LiveServer) -> None:
    limit = server.services.settings.message_max_chars
    room = await make_room(server, "general")
    alice = await connected(server, "alice")
    try:
        assert (await alice.call("join", {"room": room}))["ok"]
        ack = await alice.send(room, ASTRAL * (limit + 1))
        assert ack["ok"] is False and ack["code"] == "too_long", ack
        assert ack["message"] == too_long_message(limit)
        await lives(alice, room)
        stored = await alice.send(room, ASTRAL * limit)
        assert stored["ok"], stored
        page = await alice.call("history", {"room": room, "limit": 1})
        assert page["messages"][0]["text"] == ASTRAL * limit
    finally:
        await alice.close()


async def test_only_the_configured_limit_is_ever_named(server: LiveServer) -> None:
    """Past the old 20,000-character schema bound the answer is still the service's."""
    limit = server.services.settings.message_max_chars
    room = await make_room(server, "general")
    alice = await connected(server, "alice")
    try:
        assert (await alice.call("join", {"room": room}))["ok"]
        for length in (limit + 1, 20_001, 30_000):
            ack = await alice.send(room, "x" * length)
            assert ack["ok"] is False and ack["code"] == "too_long", (length, ack)
            assert ack["message"] == too_long_message(limit)
        await lives(alice, room)
    finally:
        await alice.close()


async def test_the_json_api_names_the_same_limit(server: LiveServer) -> None:
    limit = server.services.settings.message_max_chars
    room = await make_room(server, "general")
    _, token = await make_bot(server, "poster", [room])
    async with server.client() as http:
        response = await http.post(f"/api/v1/rooms/{room}/messages",
                                   headers={"Authorization": f"Bearer {token}"},
                                   json={"client_msg_id": "long-1", "text": "x" * (limit + 1)})
    assert response.status_code == 400
    assert response.json()["code"] == "too_long"
    assert response.json()["message"] == too_long_message(limit)


async def test_far_past_the_packet_cap_the_connection_is_cut(server: LiveServer) -> None:
    """The cap still bounds what a client can make the server read."""
    limit = server.services.settings.message_max_chars
    room = await make_room(server, "general")
    alice = await connected(server, "alice")
    try:
        await alice.sio.emit("message", {"room": room, "client_msg_id": "huge",
                                         "text": "y" * (max_packet_bytes(limit) + 1)})
        await asyncio.wait_for(alice.disconnected.wait(), 5)
    finally:
        await alice.close()


def test_hypercorn_frames_fit_the_largest_allowed_limit() -> None:
    """hypercorn.toml is static: it must carry a packet for any limit the settings allow."""
    shipped = tomllib.loads((ROOT / "hypercorn.toml").read_text())
    largest = Settings.model_fields["message_max_chars"].metadata
    le = next(m.le for m in largest if getattr(m, "le", None) is not None)
    assert shipped["websocket_max_message_size"] >= max_packet_bytes(le)


@pytest.fixture
async def widest_server(settings_factory: Callable[..., Settings]) -> AsyncIterator[LiveServer]:
    from streamzy.clock import ManualClock

    le = next(m.le for m in Settings.model_fields["message_max_chars"].metadata
              if getattr(m, "le", None) is not None)
    live, shutdown = await start_server(settings_factory(message_max_chars=le), ManualClock())
    try:
        yield live
    finally:
        await shutdown()


async def test_the_largest_allowed_limit_passes_the_shipped_server(
        widest_server: LiveServer) -> None:
    server = widest_server
    limit = server.services.settings.message_max_chars
    room = await make_room(server, "general")
    alice = await connected(server, "alice")
    try:
        assert (await alice.call("join", {"room": room}))["ok"]
        ack: Any = await alice.send(room, ASTRAL * (limit + 1))
        assert ack["ok"] is False and ack["code"] == "too_long", ack
        assert ack["message"] == too_long_message(limit)
        await lives(alice, room)
    finally:
        await alice.close()
