"""Clients as bot authors run them: default options, so polling first, then the upgrade.

Also the raw Engine.IO requests such clients (and curious people) make without an Origin
header, which must get ordinary answers with the security headers, never a 500.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
import socketio

from tests.conftest import REQUIRE_SERVICES, LiveServer
from tests.realtime.helpers import make_room
from tests.realtime.test_bots import make_bot

NODE_CLIENT = Path(__file__).resolve().parents[1] / "clients" / "node"


def assert_security_headers(headers: object) -> None:
    for name in ("content-security-policy", "x-content-type-options", "x-frame-options"):
        assert name in headers, name  # type: ignore[operator]


async def test_polling_handshake_without_origin_is_answered_with_headers(
        server: LiveServer) -> None:
    async with server.client() as http:
        opened = await http.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
        assert opened.status_code == 200, opened.text
        assert '"sid"' in opened.text and "upgrades" in opened.text
        assert_security_headers(opened.headers)
        assert "charset=" in opened.headers["content-type"].lower()
        bogus = await http.get("/socket.io/", params={"EIO": "4", "transport": "polling",
                                                      "sid": "not-a-session"})
        assert bogus.status_code == 400
        assert_security_headers(bogus.headers)
        assert "charset=" in bogus.headers["content-type"].lower()


async def test_python_client_with_default_transports_connects(server: LiveServer) -> None:
    room = await make_room(server, "general")
    _, token = await make_bot(server, "helper", [room])
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(server.url, auth={"token": token}, wait_timeout=5)
    try:
        async with asyncio.timeout(5):
            while client.transport() != "websocket":
                await asyncio.sleep(0.02)
        rooms = await client.call("rooms", {}, timeout=5)
        assert rooms["ok"] and [r["id"] for r in rooms["rooms"]] == [room]
    finally:
        await client.disconnect()


async def node_client(url: str, token: str = "") -> dict[str, object]:
    if shutil.which("node") is None or not (NODE_CLIENT / "node_modules").exists():
        message = ("the Node client needs node and `npm ci` in tests/clients/node "
                   "(scripts/test.sh runs it when npm is installed)")
        if REQUIRE_SERVICES:
            pytest.fail(message + " (STREAMZY_REQUIRE_SERVICES=1)")
        pytest.skip(message)
    process = await asyncio.create_subprocess_exec(
        "node", str(NODE_CLIENT / "connect.mjs"), url, *([token] if token else []),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, (out, err)
    return json.loads(out.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]


async def test_official_node_client_with_default_options(server: LiveServer) -> None:
    room = await make_room(server, "general")
    _, token = await make_bot(server, "helper", [room])
    result = await node_client(server.url, token)
    assert result["connected"] and result["upgraded"], result
    assert result["transports"] == ["polling", "websocket"]
    rooms = result["rooms"]
    assert isinstance(rooms, dict) and rooms["ok"] and rooms["rooms"][0]["id"] == room
    refused = await node_client(server.url, "szb_not-a-token")
    assert not refused["connected"]
    assert refused["error"]["data"]["code"] == "invalid_token"  # type: ignore[index]


async def test_official_node_client_edits_reacts_replies_and_deletes(
        server: LiveServer) -> None:
    """The conversation events from the official client with default options (polling
    first), including a forged server-only event, which is refused, not delivered."""
    room = await make_room(server, "general")
    _, token = await make_bot(server, "helper", [room])
    if shutil.which("node") is None or not (NODE_CLIENT / "node_modules").exists():
        await node_client(server.url, token)  # skips (or fails when required) with the reason
    process = await asyncio.create_subprocess_exec(
        "node", str(NODE_CLIENT / "converse.mjs"), server.url, token, str(room),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 40)
    assert process.returncode == 0, (out, err)
    result = json.loads(out.decode().strip().splitlines()[-1])
    acks = result["acks"]
    assert all(acks[name]["ok"] for name in ("join", "message", "edit", "react", "reply",
                                             "delete")), acks
    assert acks["react"]["added"] is True and acks["delete"]["change_seq"] == 3
    assert acks["forged"]["ok"] is False and acks["forged"]["code"] == "reserved_event"
    assert [c["kind"] for c in result["changes"]] == ["edit", "react", "delete"]
    assert result["changes"][-1]["message"]["deleted"] is True
    reply = next(m for m in result["messages"] if m["text"] == "a reply")
    assert reply["reply_to"]["text"] == "hello from node, edited"
