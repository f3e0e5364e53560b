"""Moderation over Socket.IO against the real server: kick, ban, mute, slow mode, archive,
reports and roles, with real python-socketio clients and the server's manual clock."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from streamzy.guards.circuit import Circuit
from streamzy.guards.context import SYSTEM
from streamzy.realtime.handlers import ChatHandlers
from streamzy.realtime.moderation_handlers import ModerationHandlers
from streamzy.realtime.namespace import SERVER_ONLY
from streamzy.realtime.registry import SocketRegistry
from streamzy.services.message_state import Person
from tests.conftest import LiveServer
from tests.realtime.helpers import ChatClient, connected, signed_in_cookie

MODERATION_EVENTS = {"report", "permissions", "mute", "unmute", "kick", "ban", "unban",
                     "slow_mode", "set_role", "invite", "archive"}
NOTICES = ("removed", "standing", "room_state")


def listen(client: ChatClient) -> ChatClient:
    """Record the moderation notices too (removed, standing, room_state)."""
    for name in NOTICES:
        client.sio.on(name, client._recorder(name))
    return client


def notices(client: ChatClient, name: str) -> list[dict[str, Any]]:
    return [data for kind, data in client.events if kind == name]


@dataclass
class Room_:
    id: int
    owner: ChatClient
    mod: ChatClient
    alice: ChatClient
    ids: dict[str, int]


@pytest.fixture
async def room(server: LiveServer) -> AsyncIterator[Room_]:
    """#general: olivia owns it, mona moderates, alice is a member; all three joined."""
    services = server.services
    cookies = {name: await signed_in_cookie(server, name) for name in ("olivia", "mona",
                                                                       "alice")}
    ids = {name: (await services.accounts.by_username(name)).id  # type: ignore[union-attr]
           for name in cookies}
    created = await services.rooms.create(ids["olivia"], "general", "", False, SYSTEM)
    for name in ("mona", "alice"):
        await services.rooms.invite(ids["olivia"], created.id, name, SYSTEM)
    await services.room_roles.set_role(ids["olivia"], created.id, ids["mona"], "moderator",
                                       SYSTEM)
    clients = [listen(await connected(server, cookie=cookies[name], rooms=[created.id]))
               for name in ("olivia", "mona", "alice")]
    try:
        yield Room_(created.id, *clients, ids)
    finally:
        for client in clients:
            await client.close()


async def refused(client: ChatClient, event: str, data: Any) -> str:
    ack = await client.call(event, data)
    assert ack["ok"] is False, ack
    assert isinstance(ack["message"], str) and ack["message"]
    return str(ack["code"])


def test_the_moderation_events_join_the_chat_table() -> None:
    chat = set(ChatHandlers.table(object.__new__(ChatHandlers)))  # type: ignore[arg-type]
    moderation = set(ModerationHandlers.table(object.__new__(ModerationHandlers)))  # type: ignore[arg-type]
    assert moderation == MODERATION_EVENTS
    assert not chat & moderation and not set(NOTICES) & moderation
    assert set(NOTICES) <= SERVER_ONLY


async def test_the_live_namespace_answers_every_moderation_event(server: LiveServer) -> None:
    table = server.app.realtime.namespace._handlers
    assert MODERATION_EVENTS <= set(table)


async def test_a_kick_takes_the_live_sockets_out_of_the_room_at_once(
        server: LiveServer, room: Room_) -> None:
    second_tab = listen(await connected(server, cookie=room.alice.cookie, rooms=[room.id]))
    try:
        assert (await room.alice.send(room.id, "before"))["ok"]
        ack = await room.mod.call("kick", {"room": room.id, "user": room.ids["alice"],
                                           "reason": "off topic"})
        assert ack == {"ok": True}
        for tab in (room.alice, second_tab):
            await tab.wait_for(lambda t=tab: notices(t, "removed") == [
                {"room": room.id, "reason": "kicked"}], what="the removed notice")
            assert await refused(tab, "message", {"room": room.id, "client_msg_id": "k1",
                                                  "text": "still here?"}) == "not_a_member"
            assert await refused(tab, "history", {"room": room.id}) == "not_a_member"
        assert (await room.owner.send(room.id, "after the kick"))["ok"]
        await room.mod.wait_for(lambda: "after the kick" in room.mod.texts(room.id))
        assert (await room.alice.call("rooms"))["ok"]  # a round trip after the broadcast
        assert (await second_tab.call("rooms"))["ok"]
        for tab in (room.alice, second_tab):
            assert "after the kick" not in tab.texts(room.id)
        presence = server.app.realtime.presence
        assert not any(presence.joined(sid, room.id)
                       for sid in server.app.realtime.registry.sids(f"user:{room.ids['alice']}"))
        # A kick is not a ban: a public room can be joined again.
        assert (await room.alice.call("join", {"room": room.id}))["ok"]
        assert (await room.alice.send(room.id, "back"))["ok"]
    finally:
        await second_tab.close()
    [row] = await server.audit_rows("room_kicked")
    assert row.user_id == room.ids["mona"] and '"reason": "off topic"' in row.detail


async def test_a_ban_removes_and_keeps_out_until_it_ends(server: LiveServer,
                                                         room: Room_) -> None:
    ack = await room.owner.call("ban", {"room": room.id, "user": room.ids["alice"],
                                        "minutes": 60, "reason": "spam"})
    assert ack["ok"] and ack["until"]
    await room.alice.wait_for(lambda: notices(room.alice, "removed") == [
        {"room": room.id, "reason": "banned"}])
    assert await refused(room.alice, "join", {"room": room.id}) == "banned"
    assert await refused(room.owner, "invite", {"room": room.id, "username": "alice"}) == "banned"
    server.clock.advance(3600)
    assert (await room.alice.call("join", {"room": room.id}))["ok"]
    assert len(await server.audit_rows("room_banned")) == 1


async def test_a_mute_refuses_posting_until_it_ends_and_tells_the_member(
        server: LiveServer, room: Room_) -> None:
    ack = await room.mod.call("mute", {"room": room.id, "user": room.ids["alice"],
                                       "minutes": 5})
    assert ack["ok"]
    await room.alice.wait_for(lambda: notices(room.alice, "standing") == [
        {"room": room.id, "role": "member", "muted_until": ack["until"]}])
    muted = await room.alice.send(room.id, "hello?")
    assert muted["ok"] is False and muted["code"] == "muted", muted
    assert muted["message"].startswith("You are muted in this room until")
    about = await room.alice.call("permissions", {"room": room.id})
    assert about["muted_until"] == ack["until"] and about["can_moderate"] is False
    server.clock.advance(5 * 60)
    assert (await room.alice.send(room.id, "I can talk again"))["ok"]
    assert (await room.mod.call("unmute", {"room": room.id, "user": room.ids["alice"]}))["ok"]
    assert len(await server.audit_rows("room_muted")) == 1


async def test_slow_mode_refuses_a_quick_second_message_until_it_passes(
        server: LiveServer, room: Room_) -> None:
    assert (await room.mod.call("slow_mode", {"room": room.id, "seconds": 30}))["ok"]
    await room.alice.wait_for(lambda: notices(room.alice, "room_state") == [
        {"room": room.id, "archived": False, "slow_mode_seconds": 30}])
    assert (await room.alice.send(room.id, "one"))["ok"]
    ack = await room.alice.send(room.id, "two")
    assert ack["ok"] is False and ack["code"] == "slow_mode", ack
    assert 29 <= ack["retry_after"] <= 30
    assert (await room.mod.send(room.id, "moderators are exempt"))["ok"]
    assert (await room.mod.send(room.id, "twice"))["ok"]
    server.clock.advance(30)
    assert (await room.alice.send(room.id, "three"))["ok"]


async def test_an_archived_room_refuses_messages_and_stays_readable(
        server: LiveServer, room: Room_) -> None:
    assert (await room.alice.send(room.id, "old news"))["ok"]
    assert await refused(room.mod, "archive", {"room": room.id, "archived": True}) == \
        "not_allowed"
    assert (await room.owner.call("archive", {"room": room.id, "archived": True}))["ok"]
    await room.alice.wait_for(lambda: notices(room.alice, "room_state") == [
        {"room": room.id, "archived": True, "slow_mode_seconds": 0}])
    for client in (room.alice, room.owner):
        assert await refused(client, "message", {"room": room.id, "client_msg_id": "a1",
                                                 "text": "anyone?"}) == "archived"
    page = await room.alice.call("history", {"room": room.id})
    assert [m["text"] for m in page["messages"]] == ["old news"]
    assert (await room.owner.call("archive", {"room": room.id, "archived": False}))["ok"]
    assert (await room.alice.send(room.id, "open again"))["ok"]


async def test_permission_refusals_over_the_socket(server: LiveServer, room: Room_) -> None:
    alice, mod = room.alice, room.mod
    owner_id, mod_id, alice_id = room.ids["olivia"], room.ids["mona"], room.ids["alice"]
    for event, data in (("kick", {"user": mod_id}), ("mute", {"user": mod_id, "minutes": 1}),
                        ("ban", {"user": mod_id}), ("slow_mode", {"seconds": 5}),
                        ("archive", {"archived": True}), ("set_role", {"user": mod_id,
                                                                       "role": "member"}),
                        ("invite", {"username": "olivia"}), ("unban", {"user": mod_id})):
        assert await refused(alice, event, {"room": room.id, **data}) == "not_allowed", event
    for event, data in (("kick", {}), ("mute", {"minutes": 1}), ("ban", {})):
        assert await refused(mod, event, {"room": room.id, "user": owner_id,
                                          **data}) == "outranked", event
    assert await refused(mod, "set_role", {"room": room.id, "user": alice_id,
                                           "role": "moderator"}) == "not_allowed"
    assert await refused(mod, "kick", {"room": room.id, "user": mod_id}) == "not_yourself"
    assert (await room.owner.call("set_role", {"room": room.id, "user": alice_id,
                                               "role": "moderator"}))["role"] == "moderator"
    await alice.wait_for(lambda: notices(alice, "standing")[-1:] == [
        {"room": room.id, "role": "moderator", "muted_until": None}])
    assert (await alice.call("permissions", {"room": room.id}))["can_moderate"] is True
    denied = await server.audit_rows("room_action_denied")
    assert {row.user_id for row in denied} == {alice_id, mod_id}


async def test_admins_cannot_moderate_a_direct_conversation(server: LiveServer,
                                                            room: Room_) -> None:
    services = server.services
    admin = await connected(server, cookie=await signed_in_cookie(server, "root", admin=True))
    alice = await services.accounts.by_username("alice")
    assert alice is not None
    dm = (await services.direct.open(Person(alice.id, "alice", "Alice"), ["mona"], SYSTEM)).room
    try:
        for event, data in (("kick", {"user": room.ids["alice"]}),
                            ("mute", {"user": room.ids["alice"], "minutes": 1}),
                            ("archive", {"archived": True}),
                            ("invite", {"username": "olivia"})):
            assert await refused(admin, event, {"room": dm.id, **data}) == \
                "direct_conversation", event
        assert await refused(room.alice, "kick", {"room": dm.id, "user": room.ids["mona"]}) == \
            "direct_conversation"
        assert await refused(admin, "permissions", {"room": dm.id}) == "not_a_member"
    finally:
        await admin.close()


async def test_reports_over_the_socket(server: LiveServer, room: Room_) -> None:
    sent = await room.owner.send(room.id, "something nasty")
    ack = await room.alice.call("report", {"room": room.id, "id": sent["id"],
                                           "reason": "rude"})
    assert ack["ok"] and ack["report"] > 0 and ack["duplicate"] is False
    again = await room.alice.call("report", {"room": room.id, "id": sent["id"]})
    assert again["report"] == ack["report"] and again["duplicate"] is True
    outsider = await connected(server, "sam")
    try:
        assert await refused(outsider, "report", {"room": room.id, "id": sent["id"],
                                                  "reason": "x"}) == "not_a_member"
    finally:
        await outsider.close()
    assert await refused(room.alice, "report", {"room": room.id, "id": 999_999}) == \
        "unknown_message"
    assert await refused(room.alice, "report", {"room": room.id, "id": sent["id"],
                                                "reason": "x" * 501}) == "invalid_input"
    assert len(await server.audit_rows("message_reported")) == 1


BAD = [None, [], "kick", {}, {"room": 2**70, "user": 1}, {"room": "general", "user": 0},
       {"room": "general", "user": "1"}, {"room": "general\x00", "user": 1},
       {"room": "nowhere", "user": 1, "minutes": 1, "seconds": 1, "role": "member",
        "archived": True, "username": "x", "id": 1},
       {"room": "general", "user": 1, "minutes": 10**9, "seconds": -1, "role": "king",
        "archived": "yes", "username": "", "id": 2**64, "reason": "r" * 1000, "extra": 1},
       {"room": "general", "user": 999_999, "minutes": 1, "seconds": 0, "role": "member",
        "archived": False, "username": "nobody", "id": 999_999}]
KNOWN = {"invalid_payload", "invalid_input", "unknown_room", "no_user", "not_allowed",
         "not_a_member", "outranked", "target_not_member", "not_banned", "unknown_message"}


@pytest.mark.parametrize("event", sorted(MODERATION_EVENTS))
async def test_bad_input_gets_a_stable_code_never_a_traceback(server: LiveServer, room: Room_,
                                                              event: str) -> None:
    for payload in BAD:
        ack = await room.alice.call(event, payload)
        assert isinstance(ack, dict), (event, payload, ack)
        if not ack["ok"]:
            assert ack["code"] in KNOWN, (event, payload, ack)
    assert room.alice.sio.connected
    assert (await room.alice.send(room.id, "still fine"))["ok"]


async def test_room_notices_wait_for_redis_and_go_out_when_it_is_back() -> None:
    """A kick while Redis is away still reaches the other processes, once it is back."""
    now = [0.0]
    left: list[tuple[int, int]] = []

    class FlakyRedis:
        up = False
        sent: list[Any] = []

        async def publish(self, channel: str, message: str) -> None:
            if not self.up:
                raise ConnectionError("Redis is away")
            self.sent.append(json.loads(message))

    async def leave(user_id: int, room_id: int) -> None:
        left.append((user_id, room_id))

    async def drop(sid: str, reason: str) -> None:
        raise AssertionError("no socket is dropped here")

    registry = SocketRegistry(drop)
    registry._circuit = Circuit("test", timeout=1, cooldown=1, monotonic=lambda: now[0])
    redis = registry._redis = FlakyRedis()
    registry.on_leave_room = leave
    await registry.leave_room(7, 3)
    await registry.room_changed(3)
    assert left == [(7, 3)]  # this process at once
    assert redis.sent == []
    redis.up, now[0] = True, 5.0
    await registry._resubscribed()
    assert redis.sent == [{"leave_room": [7, 3]}, {"room_changed": 3}]
    await registry.room_changed(4)
    assert redis.sent[-1] == {"room_changed": 4} and registry._unsent == []
