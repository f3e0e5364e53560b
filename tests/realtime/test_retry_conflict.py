"""A client_msg_id names one message: a retry with the same text is answered with the
original ack; the same id with another text (or room) is a conflict, never a silent
``duplicate: true`` that tells the sender a message was stored when it was not."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from streamzy.storage.models import Message
from tests.conftest import LiveServer
from tests.realtime.helpers import connected, make_room
from tests.realtime.test_bots import make_bot


async def stored_count(server: LiveServer) -> int:
    async with server.services.db.unit() as db:
        return len((await db.execute(select(Message.id))).scalars().all())


async def test_same_id_other_text_is_a_conflict_on_the_socket(server: LiveServer) -> None:
    room = await make_room(server, "general")
    alice = await connected(server, "alice")
    try:
        assert (await alice.call("join", {"room": room}))["ok"]
        first = await alice.send(room, "the original", "retry-1")
        assert first["ok"] and not first["duplicate"]
        changed = await alice.send(room, "a different text", "retry-1")
        assert changed["ok"] is False and changed["code"] == "conflict", changed
        assert "retry-1" not in changed["message"]  # nothing echoed back
        same = await alice.send(room, "the original", "retry-1")
        assert same["ok"] and same["duplicate"] is True
        assert (same["id"], same["seq"]) == (first["id"], first["seq"])
        # Normalisation happens before the comparison: the same text with other
        # surrounding whitespace or line endings is the same message.
        padded = await alice.send(room, "  the original\r\n", "retry-1")
        assert padded["ok"] and padded["duplicate"] is True
    finally:
        await alice.close()
    assert await stored_count(server) == 1


async def test_same_id_in_another_room_is_a_conflict(server: LiveServer) -> None:
    general = await make_room(server, "general")
    other = await make_room(server, "other")
    alice = await connected(server, "alice")
    try:
        for room in (general, other):
            assert (await alice.call("join", {"room": room}))["ok"]
        assert (await alice.send(general, "hello", "moving-1"))["ok"]
        elsewhere = await alice.send(other, "hello", "moving-1")
        assert elsewhere["ok"] is False and elsewhere["code"] == "conflict", elsewhere
    finally:
        await alice.close()


async def test_conflicting_retries_in_one_group_commit(server: LiveServer) -> None:
    """Both sends reach the writer together: the first is stored, the second, with the
    same id and another text, is a conflict; an identical one is a duplicate."""
    room = await make_room(server, "general")
    alice = await connected(server, "alice")
    try:
        assert (await alice.call("join", {"room": room}))["ok"]
        acks = await asyncio.gather(alice.send(room, "one", "batch-1"),
                                    alice.send(room, "two", "batch-1"),
                                    alice.send(room, "one", "batch-1"))
        assert acks[0]["ok"] and not acks[0]["duplicate"]
        assert acks[1]["ok"] is False and acks[1]["code"] == "conflict", acks
        assert acks[2]["ok"] and acks[2]["duplicate"] and acks[2]["seq"] == acks[0]["seq"]
    finally:
        await alice.close()
    assert await stored_count(server) == 1


async def test_same_id_other_text_is_409_on_the_json_api(server: LiveServer) -> None:
    room = await make_room(server, "general")
    _, token = await make_bot(server, "poster", [room])
    auth = {"Authorization": f"Bearer {token}"}
    url = f"/api/v1/rooms/{room}/messages"
    async with server.client() as http:
        first = await http.post(url, headers=auth, json={"client_msg_id": "api-1", "text": "a"})
        assert first.status_code == 201
        changed = await http.post(url, headers=auth, json={"client_msg_id": "api-1",
                                                           "text": "b"})
        assert changed.status_code == 409, changed.text
        assert changed.json()["ok"] is False and changed.json()["code"] == "conflict"
        spec = (await http.get("/openapi.json")).json()
        documented = spec["paths"]["/api/v1/rooms/{room_id}/messages"]["post"]["responses"]
        assert "409" in documented  # the answer clients can get is in the contract
        same = await http.post(url, headers=auth, json={"client_msg_id": "api-1", "text": "a"})
        assert same.status_code == 200 and same.json()["duplicate"] is True
        assert same.json()["seq"] == first.json()["seq"]
    assert await stored_count(server) == 1
