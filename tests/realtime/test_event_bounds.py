"""Numbers in socket events are bounded by their schema, and a read position by the room."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.realtime.helpers import connected, make_room

INT64_MAX = 2**63 - 1
HUGE = 2**70


def _event(name: str, room: Any, **fields: Any) -> dict[str, Any]:
    if name == "message":
        return {"room": room, "client_msg_id": "bounds-1", "text": "hi", **fields}
    return {"room": room, **fields}


@pytest.mark.parametrize(("event", "payload"), [
    ("message", _event("message", HUGE)),
    ("message", _event("message", -HUGE)),
    ("message", _event("message", 0)),
    ("message", _event("message", INT64_MAX + 1)),
    ("join", _event("join", HUGE)),
    ("join", _event("join", "gen\x00")),  # PostgreSQL text cannot hold NUL
    ("message", _event("message", "general\n")),
    ("join", _event("join", 1, since_seq=HUGE)),
    ("join", _event("join", 1, since_seq=INT64_MAX + 1)),
    ("join", _event("join", 1, since_seq=-1)),
    ("leave", _event("leave", HUGE)),
    ("typing", _event("typing", HUGE)),
    ("history", _event("history", HUGE)),
    ("history", _event("history", 1, before_seq=HUGE)),
    ("history", _event("history", 1, before_seq=0)),
    ("history", _event("history", 1, limit=HUGE)),
    ("history", _event("history", 1, limit=0)),
    ("read", _event("read", HUGE, seq=1)),
    ("read", _event("read", 1, seq=HUGE)),
    ("read", _event("read", 1, seq=-1)),
])
async def test_out_of_range_integers_are_invalid_input(server: LiveServer, event: str,
                                                       payload: dict[str, Any]) -> None:
    room = await make_room(server, "general")
    assert room == 1
    alice = await connected(server, "alice")
    try:
        assert (await alice.call("join", {"room": room}))["ok"]
        ack = await alice.call(event, payload)
        assert ack["ok"] is False and ack["code"] == "invalid_input", ack
        assert ack["fields"], ack  # says which field
        assert (await alice.send(room, "the connection still works"))["ok"]
    finally:
        await alice.close()


async def test_the_largest_ids_and_seqs_are_valid_input(server: LiveServer) -> None:
    """The edges of the ranges pass validation and get an ordinary answer."""
    room = await make_room(server, "general")
    alice = await connected(server, "alice")
    try:
        assert (await alice.call("join", {"room": room, "since_seq": INT64_MAX}))["ok"]
        unknown = await alice.send(INT64_MAX, "nobody home")
        assert unknown["code"] == "unknown_room"
        page = await alice.call("history", {"room": room, "before_seq": INT64_MAX, "limit": 100})
        assert page["ok"] and page["messages"] == []
        assert (await alice.call("read", {"room": room, "seq": INT64_MAX}))["ok"]
    finally:
        await alice.close()


async def unread(client: Any, room: int) -> int:
    listing = await client.call("rooms")
    return next(r["unread"] for r in listing["rooms"] if r["id"] == room)


async def test_a_read_position_past_the_end_is_clamped_to_the_last_message(
        server: LiveServer) -> None:
    room = await make_room(server, "general")
    alice = await connected(server, "alice")
    bob = await connected(server, "bob")
    try:
        for client in (alice, bob):
            assert (await client.call("join", {"room": room}))["ok"]
        for k in range(3):
            assert (await alice.send(room, f"before {k}"))["ok"]
        assert await unread(bob, room) == 3
        # A client cannot have seen a message that does not exist yet: reading "up to"
        # 10**15 means reading up to the last message, not muting the room for good.
        assert (await bob.call("read", {"room": room, "seq": 10**15}))["ok"]
        assert await unread(bob, room) == 0
        for k in range(2):
            assert (await alice.send(room, f"after {k}"))["ok"]
        assert await unread(bob, room) == 2
        # Reading never moves backwards either.
        assert (await bob.call("read", {"room": room, "seq": 1}))["ok"]
        assert await unread(bob, room) == 2
        assert (await bob.call("read", {"room": room, "seq": 5}))["ok"]
        assert await unread(bob, room) == 0
    finally:
        await alice.close()
        await bob.close()
