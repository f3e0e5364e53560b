"""The bot API's edits, deletes, reactions and replies: the same use cases as the socket
events, over real HTTP with a bot token, checked against /openapi.json's shapes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from streamzy.guards.context import SYSTEM
from tests.conftest import LiveServer
from tests.realtime.helpers import connected, make_room

pytestmark = pytest.mark.asyncio


async def bot(server: LiveServer, name: str, rooms: list[int]) -> dict[str, str]:
    admin = await server.services.accounts.by_username("roomadmin")
    assert admin is not None
    _, token = await server.services.bots.create(admin.id, name, name.title(), rooms, SYSTEM)
    return {"Authorization": f"Bearer {token}"}


async def post(http: httpx.AsyncClient, room: int, auth: dict[str, str], text: str,
               **extra: Any) -> dict[str, Any]:
    response = await http.post(f"/api/v1/rooms/{room}/messages", headers=auth,
                               json={"client_msg_id": f"c{len(text)}-{abs(hash(text))}", "text": text,
                                     **extra})
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_a_bot_edits_deletes_reacts_and_replies(server: LiveServer) -> None:
    room = await make_room(server, "general")
    auth = await bot(server, "poster", [room])
    watcher = await connected(server, "watcher", rooms=[room])
    try:
        async with server.client() as http:
            first = await post(http, room, auth, "status: build started")
            reply = await post(http, room, auth, "status: build passed", reply_to=first["id"])
            edited = await http.patch(f"/api/v1/rooms/{room}/messages/{first['id']}",
                                      headers=auth, json={"text": "status: build queued"})
            assert edited.status_code == 200 and edited.json()["change_seq"] == 1
            assert edited.json()["edited_at"]
            reacted = await http.post(
                f"/api/v1/rooms/{room}/messages/{reply['id']}/reactions", headers=auth,
                json={"emoji": "✅"})
            assert reacted.status_code == 200 and reacted.json()["added"] is True
            deleted = await http.delete(f"/api/v1/rooms/{room}/messages/{first['id']}",
                                        headers=auth)
            assert deleted.status_code == 200 and deleted.json()["change_seq"] == 3
            page = (await http.get(f"/api/v1/rooms/{room}/messages", headers=auth)).json()
        first_now, reply_now = page["messages"]
        assert first_now["deleted"] is True and first_now["text"] == ""
        assert reply_now["reply_to"]["id"] == first["id"] and reply_now["reply_to"]["deleted"]
        assert reply_now["reactions"][0]["emoji"] == "✅"
        await watcher.wait_for(lambda: len(watcher.received("message_changed")) == 3)
        assert [c["kind"] for c in watcher.received("message_changed")] == \
            ["edit", "react", "delete"]
    finally:
        await watcher.close()


async def test_the_api_refuses_what_the_socket_refuses(server: LiveServer) -> None:
    room = await make_room(server, "general")
    elsewhere = await make_room(server, "elsewhere")
    auth = await bot(server, "poster", [room])
    other = await bot(server, "other", [room])
    async with server.client() as http:
        mine = await post(http, room, auth, "mine")
        base = f"/api/v1/rooms/{room}/messages/{mine['id']}"
        cases = [
            (http.patch(base, headers=other, json={"text": "x"}), 403, "not_yours"),
            (http.delete(base, headers=other), 403, "forbidden"),
            (http.patch(f"/api/v1/rooms/{room}/messages/999999", headers=auth,
                        json={"text": "x"}), 404, "not_found"),
            (http.patch(f"/api/v1/rooms/{elsewhere}/messages/{mine['id']}", headers=auth,
                        json={"text": "x"}), 403, "not_a_member"),
            (http.post(f"{base}/reactions", headers=auth, json={"emoji": "lol"}), 400,
             "invalid_emoji"),
            (http.post(f"{base}/reactions", headers=auth, json={"emoji": "👍", "x": 1}), 400,
             "invalid_input"),
            (http.patch(base, headers=auth, json={"text": ""}), 400, "empty"),
            (http.patch(base, headers=auth, content=b"text=x"), 415,
             "unsupported_media_type"),
            (http.patch(base, json={"text": "x"}), 401, None),
        ]
        for request, status, code in cases:
            response = await request
            assert response.status_code == status, (status, response.text)
            if code is not None:
                assert response.json()["code"] == code, response.text
        assert (await http.delete(base, headers=auth)).status_code == 200
        gone = await http.patch(base, headers=auth, json={"text": "again"})
        assert gone.status_code == 400 and gone.json()["code"] == "deleted"
