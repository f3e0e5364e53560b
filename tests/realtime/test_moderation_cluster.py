"""Moderation across two processes (Redis): a kick on one takes the member's sockets out of
the room on the other, and a mute set on one applies at once on the other (whose cached
rules of the room were warm)."""

from __future__ import annotations

import pytest

from streamzy.guards.context import SYSTEM
from tests.faults.processes import user_session
from tests.realtime.helpers import connected
from tests.realtime.test_multiprocess import cluster  # noqa: F401 - the two-process fixture

pytestmark = pytest.mark.slow


async def test_a_kick_on_one_process_removes_the_sockets_on_the_other(
        cluster: dict) -> None:  # noqa: F811 - the fixture imported above
    services = cluster["services"]
    url_a, url_b = cluster["urls"]
    cookies = {name: await user_session(services, name) for name in ("olivia", "alice", "bob")}
    owner = await services.accounts.by_username("olivia")
    room = (await services.rooms.create(owner.id, "general", "", False, SYSTEM)).id
    for name in ("alice", "bob"):
        await services.rooms.invite(owner.id, room, name, SYSTEM)
    alice_id = (await services.accounts.by_username("alice")).id
    olivia = await connected(url_a, cookie=cookies["olivia"], rooms=[room])
    alice_b = await connected(url_b, cookie=cookies["alice"], rooms=[room])
    bob_b = await connected(url_b, cookie=cookies["bob"], rooms=[room])
    removed: list[dict] = []
    alice_b.sio.on("removed", lambda data: removed.append(data))
    bob_id = (await services.accounts.by_username("bob")).id
    try:
        assert (await bob_b.send(room, "bob warms B's rules of the room"))["ok"]
        assert (await olivia.call("mute", {"room": room, "user": bob_id, "minutes": 5}))["ok"]
        ack = await bob_b.send(room, "muted on A, refused on B")
        assert ack["ok"] is False and ack["code"] == "muted", ack
        assert (await olivia.call("unmute", {"room": room, "user": bob_id}))["ok"]
        assert (await bob_b.send(room, "unmuted on A, heard on B"))["ok"]
        assert (await olivia.send(room, "before"))["ok"]
        await alice_b.wait_for(lambda: alice_b.texts(room)[-1:] == ["before"])
        assert (await olivia.call("kick", {"room": room, "user": alice_id}))["ok"]
        await alice_b.wait_for(lambda: removed == [{"room": room, "reason": "kicked"}],
                               what="the removed notice on the other process")
        ack = await alice_b.send(room, "am I still here?")
        assert ack["ok"] is False and ack["code"] == "not_a_member", ack
        assert (await olivia.send(room, "after"))["ok"]
        await bob_b.wait_for(lambda: bob_b.texts(room)[-2:] == ["before", "after"])
        assert (await alice_b.call("rooms"))["ok"]  # a round trip after the broadcast
        assert alice_b.texts(room)[-1] == "before"
    finally:
        for client in (olivia, alice_b, bob_b):
            await client.close()
