"""Reserved event names sent by a client, and per-connection state after waves of sockets."""

from __future__ import annotations

import asyncio

from tests.conftest import LiveServer
from tests.realtime.helpers import ChatClient, connected, make_room


async def test_a_forged_disconnect_keeps_nothing_alive_after_logout(server: LiveServer) -> None:
    room = await make_room(server, "general")
    mallory = await connected(server, "mallory")
    bob = await connected(server, "bob")
    for client in (mallory, bob):
        assert (await client.call("join", {"room": room}))["ok"]
    ack = await mallory.call("disconnect", {})
    assert ack["ok"] is False and ack["code"] == "reserved_event"
    assert [r.detail for r in await server.audit_rows("socket_reserved_event")]
    # The forged packet changed nothing: logging out still ends the live socket at once.
    assert mallory.cookie is not None
    session = (await server.services.sessions.resolve(mallory.cookie)).session
    assert session is not None
    await server.services.sessions.revoke(session.id, "logout")
    await mallory.wait_for(lambda: bool(mallory.ended))
    await asyncio.wait_for(mallory.disconnected.wait(), 5)
    await bob.send(room, "after the logout")
    await bob.wait_for(lambda: "after the logout" in bob.texts(room))
    assert "after the logout" not in mallory.texts(room)
    await bob.close()


async def test_server_only_and_lifecycle_names_are_refused(server: LiveServer) -> None:
    alice = await connected(server, "alice")
    for name in ("connect", "disconnect", "connect_error", "session_ended", "kicked",
                 "presence", "resync", "restart"):
        ack = await alice.call(name, {"room": 1})
        assert ack["code"] == "reserved_event", name
    assert (await alice.call("rooms", {}))["ok"]  # still connected and served
    rows = await server.audit_rows("socket_reserved_event")
    assert len(rows) == 1  # throttled per connection: a loop cannot flood the trail
    await alice.close()


def state(server: LiveServer) -> dict[str, int]:
    sizes = server.app.realtime.namespace.state_sizes()
    manager_rooms = server.app.sio.manager.rooms.get("/", {})
    sizes["socketio_rooms"] = sum(len(members) for members in manager_rooms.values())
    sizes["socketio_room_index"] = server.app.sio.manager.indexed_sockets()
    return sizes


async def test_no_per_connection_state_is_left_after_waves(server: LiveServer) -> None:
    room = await make_room(server, "general")
    for wave in range(3):
        clients = [await connected(server, f"w{wave}u{i}") for i in range(12)]
        for i, client in enumerate(clients):
            assert (await client.call("join", {"room": room}))["ok"]
            await client.call("typing", {"room": room})
            await client.send(room, f"wave {wave} from {i}")
            await client.call("disconnect", {})  # forged: must not strip state early
        assert state(server)["connections"] == 12
        await asyncio.gather(*(c.close() for c in clients))
        try:
            await ChatClient(server).wait_for(lambda: not any(state(server).values()))
        except AssertionError:
            raise AssertionError(f"state left: {state(server)}") from None
    assert state(server) == dict.fromkeys(state(server), 0)
