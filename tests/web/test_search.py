"""GET /search (the browser's search box) and GET /api/v1/search (bots) over real HTTP:
results, membership, stable 400 codes, and the query kept out of logs and audit."""

from __future__ import annotations

import logging

import pytest

from streamzy.guards.context import SYSTEM
from streamzy.services.message_writer import Sender
from tests.conftest import LiveServer, login
from tests.realtime.helpers import make_room

pytestmark = pytest.mark.asyncio
JSON = {"Accept": "application/json"}


async def say(server: LiveServer, username: str, room_id: int, text: str) -> None:
    user = await server.services.accounts.by_username(username)
    assert user is not None
    room = await server.services.rooms.get(room_id)
    assert room is not None
    await server.services.rooms.join(user.id, room)
    await server.services.messages.send(Sender(user.id, user.username, user.display_name),
                                        room, f"c-{abs(hash(text))}", text, SYSTEM)


async def test_the_search_box_finds_in_own_rooms_only(server: LiveServer,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    general = await make_room(server, "general")
    secret = await make_room(server, "secret", private=True)
    await server.make_user("alice")
    await server.make_user("bob")
    await say(server, "alice", general, "the xylophonic tune was lovely")
    await say(server, "roomadmin", secret, "xylophonic secret plans")  # its creator
    caplog.set_level(logging.DEBUG)
    async with server.client() as http:
        assert (await login(http, "bob")).status_code in (302, 303)
        await say(server, "bob", general, "bob says hello")
        answer = await http.get("/search", params={"q": "Xylophon"}, headers=JSON)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert [r["snippet"] for r in body["results"]] == ["the xylophonic tune was lovely"]
        hit = body["results"][0]
        assert hit["room"]["name"] == "general" and hit["seq"] == 1
        assert hit["sender"]["username"] == "alice"
        assert hit["url"] == "/rooms/general?at=1"
        assert body["next_before"] is None
        only = await http.get("/search", params={"q": "xylophonic", "room": "secret"},
                              headers=JSON)
        assert only.status_code == 200 and only.json()["results"] == []
        for query, code in (("", "empty_query"), ("x" * 300, "query_too_long"),
                            ("a\x00b", "invalid_query"), ("ab", "query_too_short")):
            refused = await http.get("/search", params={"q": query}, headers=JSON)
            assert refused.status_code == 400, (query, refused.text)
            assert refused.json()["code"] == code
        huge = await http.get("/search", params={"q": "y" * 5000}, headers=JSON)
        assert huge.status_code == 400
    # The query is content: not in the logs, not in the audit trail.
    server_side = "\n".join(record.getMessage() for record in caplog.records
                            if not record.name.startswith(("httpx", "httpcore")))  # the client's
    assert "xylophon" not in server_side.lower()
    for row in await server.audit_rows():
        assert "xylophon" not in str(row.detail).lower()


async def test_search_needs_a_session(server: LiveServer) -> None:
    async with server.client() as http:
        answer = await http.get("/search", params={"q": "hello"}, headers=JSON)
    assert answer.status_code in (302, 303, 401)


async def test_a_bot_searches_its_rooms(server: LiveServer) -> None:
    general = await make_room(server, "general")
    other = await make_room(server, "other")
    await server.make_user("alice")
    await say(server, "alice", general, "quetzalcoatl in general")
    await say(server, "alice", other, "quetzalcoatl in other")
    admin = await server.services.accounts.by_username("roomadmin")
    assert admin is not None
    _, token = await server.services.bots.create(admin.id, "finder", "Finder", [general],
                                                 SYSTEM)
    async with server.client() as http:
        answer = await http.get("/api/v1/search", params={"q": "quetzal"},
                                headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text
        assert [r["snippet"] for r in answer.json()["results"]] == ["quetzalcoatl in general"]
        refused = await http.get("/api/v1/search", params={"q": "\x07"},
                                 headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 400 and refused.json()["code"] == "invalid_query"
        anonymous = await http.get("/api/v1/search", params={"q": "quetzal"})
        assert anonymous.status_code == 401
