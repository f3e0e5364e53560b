"""Bots: token connect over Socket.IO, room scope, revocation, and the JSON API."""

from __future__ import annotations

import pytest
import socketio
from sqlalchemy import select

from streamzy.guards.context import SYSTEM
from streamzy.storage.models import BotToken
from tests.conftest import LiveServer
from tests.realtime.helpers import ChatClient, connected, make_room


async def make_bot(server: LiveServer, name: str, rooms: list[int]) -> tuple[int, str]:
    admin = await server.services.accounts.by_username("roomadmin")
    user, token = await server.services.bots.create(admin.id, name, name.title(), rooms, SYSTEM)
    return user.id, token


async def test_bot_token_is_shown_once_and_stored_hashed(server: LiveServer) -> None:
    room = await make_room(server, "general")
    _, token = await make_bot(server, "echo", [room])
    assert token.startswith("szb_") and len(token) > 40
    async with server.services.db.unit() as db:
        row = (await db.execute(select(BotToken))).scalar_one()
    assert row.token_hash != token and token not in row.token_hash
    assert token.startswith(row.prefix)


async def test_bot_connects_with_token_and_is_scoped_to_its_rooms(server: LiveServer) -> None:
    allowed = await make_room(server, "bots-welcome")
    other = await make_room(server, "humans-only")
    _, token = await make_bot(server, "echo", [allowed])
    bot = await connected(server, token=token)
    alice = await connected(server, "alice")
    try:
        await alice.call("join", {"room": allowed})
        assert (await bot.call("join", {"room": allowed}))["ok"]
        ack = await bot.send(allowed, "beep")
        assert ack["ok"]
        await alice.wait_for(lambda: alice.texts(allowed) == ["beep"])
        assert alice.messages[0]["sender"]["bot"] is True
        refused = await bot.call("join", {"room": other})
        assert not refused["ok"] and refused["code"] == "not_a_member"
        assert (await bot.send(other, "sneaky"))["code"] == "not_a_member"
        rooms = await bot.call("rooms")
        assert [r["name"] for r in rooms["rooms"]] == ["bots-welcome"]
    finally:
        await bot.close()
        await alice.close()


async def test_bad_bot_token_is_refused(server: LiveServer) -> None:
    for token in ("szb_deadbeef_not-a-real-token", "garbage", "x" * 500):
        bot = ChatClient(server, token=token)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await bot.connect()
        assert "invalid_token" in str(bot.connect_errors)


async def test_revoking_a_token_disconnects_the_bot_at_once(server: LiveServer) -> None:
    room = await make_room(server, "general")
    _, token = await make_bot(server, "echo", [room])
    bot = await connected(server, token=token)
    async with server.services.db.unit() as db:
        token_id = (await db.execute(select(BotToken.id))).scalar_one()
    admin = await server.services.accounts.by_username("roomadmin")
    await server.services.bots.revoke(admin.id, token_id, SYSTEM)
    assert await bot.end_reason() == "token_revoked"
    again = ChatClient(server, token=token)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await again.connect()


async def test_json_api_post_history_rooms_and_auth(server: LiveServer) -> None:
    room = await make_room(server, "general")
    other = await make_room(server, "private-ish", private=True)
    _, token = await make_bot(server, "poster", [room])
    auth = {"Authorization": f"Bearer {token}"}
    async with server.client() as http:
        assert (await http.get("/api/v1/rooms")).status_code == 401
        bad = await http.get("/api/v1/rooms", headers={"Authorization": "Bearer szb_x_y"})
        assert bad.status_code == 401 and bad.json()["code"] == "invalid_token"
        rooms = (await http.get("/api/v1/rooms", headers=auth)).json()
        assert [r["name"] for r in rooms["rooms"]] == ["general"]
        posted = await http.post(f"/api/v1/rooms/{room}/messages", headers=auth,
                                 json={"client_msg_id": "api-1", "text": "from the API"})
        assert posted.status_code == 201 and posted.json()["seq"] == 1
        retried = await http.post(f"/api/v1/rooms/{room}/messages", headers=auth,
                                  json={"client_msg_id": "api-1", "text": "from the API"})
        assert retried.status_code == 200 and retried.json()["duplicate"] is True
        history = (await http.get(f"/api/v1/rooms/{room}/messages?limit=10",
                                  headers=auth)).json()
        assert [m["text"] for m in history["messages"]] == ["from the API"]
        denied = await http.post(f"/api/v1/rooms/{other}/messages", headers=auth,
                                 json={"client_msg_id": "api-2", "text": "no"})
        assert denied.status_code == 403 and denied.json()["code"] == "not_a_member"
        for body, status in (({"client_msg_id": "a"}, 400),
                             ({"client_msg_id": "a", "text": "<script>x</script>"}, 400),
                             ({"client_msg_id": "a", "text": 1}, 400)):
            response = await http.post(f"/api/v1/rooms/{room}/messages", headers=auth,
                                       json=body)
            assert response.status_code == status and response.json()["ok"] is False
        not_json = await http.post(f"/api/v1/rooms/{room}/messages", headers=auth,
                                   content=b"{not json", )
        assert not_json.status_code == 415
        broken = await http.post(f"/api/v1/rooms/{room}/messages",
                                 headers={**auth, "Content-Type": "application/json"},
                                 content=b"{not json")
        assert broken.status_code == 400
        schema = (await http.get("/openapi.json")).json()
        assert "/api/v1/rooms/{room_id}/messages" in schema["paths"]


async def test_json_api_limit_is_100_per_hour_per_token(server: LiveServer) -> None:
    room = await make_room(server, "general")
    _, token = await make_bot(server, "poller", [room])
    auth = {"Authorization": f"Bearer {token}"}
    async with server.client() as http:
        for _ in range(100):
            assert (await http.get("/api/v1/rooms", headers=auth)).status_code == 200
        limited = await http.get("/api/v1/rooms", headers=auth)
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert limited.json()["code"] == "rate_limited"
        server.clock.advance(36)
        assert (await http.get("/api/v1/rooms", headers=auth)).status_code == 200
