"""Large rooms: presence as coalesced deltas, the online list in the join answer, typing
batched and dropped in large rooms, and joins from sockets that are already gone.

The limits are set small here (3 people listed, typing up to 3 online) so that a handful
of real clients shows what a room of thousands does.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.realtime.helpers import ChatClient, connected, make_room, signed_in_cookie
from tests.realtime.test_reserved_events import state


@pytest.fixture
def server_settings() -> dict[str, Any]:
    return {"presence_interval_seconds": 1.0, "presence_list_limit": 3,
            "typing_room_limit": 3}


def presence_events(client: ChatClient, after: int = 0) -> list[dict[str, Any]]:
    return [data for name, data in client.events[after:] if name == "presence"]


def names(people: list[dict[str, Any]]) -> set[str]:
    return {p["username"] for p in people}


async def test_the_join_answer_lists_who_is_online_up_to_the_limit(server: LiveServer) -> None:
    room = await make_room(server, "general")
    clients = [await connected(server, f"pal{i}") for i in range(5)]
    try:
        acks = [await c.call("join", {"room": room}) for c in clients]
        assert names(acks[1]["online"]) == {"pal0", "pal1"} and acks[1]["online_count"] == 2
        assert acks[4]["online_count"] == 5
        assert len(acks[4]["online"]) == 3  # a count plus the first entries, not all
        assert names(acks[4]["online"]) <= {f"pal{i}" for i in range(5)}
    finally:
        await asyncio.gather(*(c.close() for c in clients))


async def test_joins_reach_the_room_as_coalesced_deltas(server: LiveServer) -> None:
    room = await make_room(server, "general")
    watcher = await connected(server, "watcher", rooms=[room])
    await watcher.wait_for(lambda: presence_events(watcher), what="its own join's batch")
    newcomers = [await connected(server, f"new{i}") for i in range(3)]
    mark = len(watcher.events)
    try:
        acks = await asyncio.gather(*(c.call("join", {"room": room}) for c in newcomers))
        assert all(a["ok"] for a in acks)
        want = {f"new{i}" for i in range(3)}
        await watcher.wait_for(lambda: set().union(
            *(names(e["joined"]) for e in presence_events(watcher, mark))) == want)
        batches = presence_events(watcher, mark)
        # Three joins, at most two batches (the first at once, the rest after the interval),
        # each naming only newcomers: never the whole list, never the watcher again.
        assert 1 <= len(batches) <= 2, batches
        assert all(names(b["joined"]) <= want and b["left"] == [] for b in batches)
        assert batches[-1]["online_count"] == 4
    finally:
        await asyncio.gather(*(c.close() for c in [watcher, *newcomers]))


async def test_leaving_is_a_delta_and_a_second_tab_keeps_you_online(
        server: LiveServer) -> None:
    room = await make_room(server, "general")
    watcher = await connected(server, "watcher", rooms=[room])
    cookie = await signed_in_cookie(server, "dana")
    tab_one = await connected(server, cookie=cookie, rooms=[room])
    tab_two = await connected(server, cookie=cookie, rooms=[room])
    dana = next(p["id"] for p in (await tab_two.call("join", {"room": room}))["online"]
                if p["username"] == "dana")
    await watcher.wait_for(lambda: any("dana" in names(e["joined"])
                                       for e in presence_events(watcher)))
    try:
        await tab_one.close()
        await watcher.wait_for(lambda: len(server.app.realtime.connections) == 2)
        eve = await connected(server, "eve", rooms=[room])  # a later change, as a marker
        await watcher.wait_for(lambda: any("eve" in names(e["joined"])
                                           for e in presence_events(watcher)))
        assert not any(dana in e["left"] for e in presence_events(watcher))
        await tab_two.close()
        await watcher.wait_for(lambda: any(e["left"] == [dana] and e["online_count"] == 2
                                           for e in presence_events(watcher)))
        await eve.close()
    finally:
        await asyncio.gather(watcher.close(), tab_one.close(), tab_two.close())


async def test_typing_is_batched_and_dropped_in_large_rooms(server: LiveServer) -> None:
    room = await make_room(server, "general")
    watcher, ann, ben = [await connected(server, n, rooms=[room])
                         for n in ("watcher", "ann", "ben")]
    mark = len(watcher.events)
    try:
        assert (await ann.call("typing", {"room": room}))["shown"]
        for _ in range(5):
            assert (await ben.call("typing", {"room": room}))["shown"]
        await watcher.wait_for(lambda: set().union(*(
            names(d["users"]) for n, d in watcher.events[mark:] if n == "typing"))
            == {"ann", "ben"})
        typing = [d for n, d in watcher.events[mark:] if n == "typing"]
        assert len(typing) <= 2  # six indicators from two people: one or two batches
        crowd = await connected(server, "carl", rooms=[room])  # 4 online: above the limit
        await watcher.wait_for(lambda: any("carl" in names(e["joined"])
                                           for e in presence_events(watcher)))
        carl = next(p["id"] for e in presence_events(watcher) for p in e["joined"]
                    if p["username"] == "carl")
        mark = len(watcher.events)
        assert (await ann.call("typing", {"room": room})) == {"ok": True, "shown": False}
        # Carl leaving is a later change of the room: a batch holding it would carry any
        # typing still waiting (typing goes out first), so none can be pending behind it.
        await crowd.close()
        await watcher.wait_for(lambda: any(carl in e["left"]
                                           for e in presence_events(watcher, mark)))
        assert not any(n == "typing" for n, _ in watcher.events[mark:])
    finally:
        await asyncio.gather(watcher.close(), ann.close(), ben.close())


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.exc_info]


async def test_a_socket_gone_before_its_join_gets_a_clean_error(
        server: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    realtime = server.app.realtime
    room = await make_room(server, "general")
    client = await connected(server, "gone")
    sid = client.sio.get_sid("/")
    principal = realtime.connections.get(sid)
    assert principal is not None
    await client.close()
    await client.wait_for(lambda: realtime.connections.get(sid) is None)
    # The join's database work finished after the disconnect: what python-socketio's
    # enter_room answered with a KeyError traceback.
    ack = await realtime.handlers.on_join(sid, principal, {"room": room})
    assert ack["ok"] is False and ack["code"] == "not_connected"
    assert await realtime.presence.snapshot(room) == ([], 0)  # never counted online
    assert not tracebacks(caplog)


async def test_a_storm_of_joins_that_hang_up_leaves_nothing_behind(
        server: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    room = await make_room(server, "general")
    clients = [await connected(server, f"hup{i}") for i in range(30)]

    async def join_and_hang_up(client: ChatClient) -> None:
        await client.sio.emit("join", {"room": room})  # no wait for the answer
        await client.sio.eio.disconnect(abort=True)     # the transport just drops

    await asyncio.gather(*(join_and_hang_up(c) for c in clients))
    await ChatClient(server).wait_for(lambda: not any(state(server).values()),
                                      what="every socket and room batch forgotten")
    assert await server.app.realtime.presence.snapshot(room) == ([], 0)
    assert not tracebacks(caplog)
