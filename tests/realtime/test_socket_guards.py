"""The socket edge's guards: auth at connect, origin, membership, revocation, bad input."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import socketio
from sqlalchemy import update

from streamzy.storage.models import Message
from tests.conftest import LiveServer, csrf_of, post_form
from tests.realtime.helpers import ChatClient, connected, make_room, signed_in_cookie
from tests.waiting import wait_until


async def refused(client: ChatClient) -> str:
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect()
    return str(client.connect_errors)


async def test_no_session_is_refused_and_audited(server: LiveServer) -> None:
    reason = await refused(ChatClient(server))
    assert "not_authenticated" in reason
    bogus = await refused(ChatClient(server, cookie="forged-session-value"))
    assert "not_authenticated" in bogus
    # Both refusals share an address and a reason: one row for the window, not one each.
    rows = await server.audit_rows("socket_refused")
    assert len(rows) == 1 and "not_authenticated" in rows[0].detail


async def test_expired_session_is_refused(server: LiveServer) -> None:
    cookie = await signed_in_cookie(server, "alice")
    server.clock.advance(2 * 3600 + 5)
    assert "session_expired" in await refused(ChatClient(server, cookie=cookie))


async def test_password_change_pending_is_refused(server: LiveServer) -> None:
    user = await server.make_user("newbie", must_change=True)
    from streamzy.guards.context import SYSTEM
    token, _ = await server.services.sessions.issue(user.id, SYSTEM)
    assert "password_change_required" in await refused(ChatClient(server, cookie=token))


async def test_foreign_origin_is_refused(server: LiveServer) -> None:
    cookie = await signed_in_cookie(server, "alice")
    evil = ChatClient(server, cookie=cookie, headers={"Origin": "https://evil.example"})
    with pytest.raises(socketio.exceptions.ConnectionError):
        await evil.connect()
    csrf = await session_csrf(server, cookie)
    same = await connected(server, cookie=cookie, headers={"Origin": server.url}, csrf=csrf)
    await same.close()
    spoof = ChatClient(server, cookie=cookie, headers={
        "Origin": "https://evil.example", "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "https"})
    with pytest.raises(socketio.exceptions.ConnectionError):
        await spoof.connect()
    # The origin check audits from a background task: wait for its row, don't assume it.
    await wait_until(lambda: server.audit_rows("socket_refused"), what="the refusal's audit")
    rows = await server.audit_rows("socket_refused")
    assert all("evil.example" in r.detail for r in rows)  # throttled per origin


async def session_csrf(server: LiveServer, cookie: str) -> str:
    async with server.client(cookies={"streamzy_session": cookie}) as http:
        return await csrf_of(http, "/account")


async def test_browser_connects_need_the_pages_csrf_token(server: LiveServer) -> None:
    cookie = await signed_in_cookie(server, "alice")
    for token in (None, "forged-token"):
        browser = ChatClient(server, cookie=cookie, headers={"Origin": server.url}, csrf=token)
        assert "csrf_failed" in await refused(browser)
    rows = await server.audit_rows("socket_refused")
    assert sum("csrf_failed" in r.detail for r in rows) == 1  # one per address and window
    good = await connected(server, cookie=cookie, headers={"Origin": server.url},
                           csrf=await session_csrf(server, cookie))
    await good.close()


async def test_non_member_of_private_room_is_refused_and_audited(server: LiveServer) -> None:
    private = await make_room(server, "staff", private=True)
    outsider = await connected(server, "mallory")
    try:
        joined = await outsider.call("join", {"room": private})
        assert not joined["ok"] and joined["code"] == "not_a_member"
        sent = await outsider.send(private, "let me in")
        assert not sent["ok"] and sent["code"] == "not_a_member"
        history = await outsider.call("history", {"room": private})
        assert not history["ok"] and history["code"] == "not_a_member"
    finally:
        await outsider.close()
    assert len(await server.audit_rows("room_access_denied")) == 3


async def test_invited_member_can_use_a_private_room(server: LiveServer) -> None:
    private = await make_room(server, "staff", private=True)
    carol = await connected(server, "carol")
    from streamzy.guards.context import SYSTEM
    admin = await server.services.accounts.by_username("roomadmin")
    await server.services.rooms.invite(admin.id, private, "carol", SYSTEM)
    try:
        assert (await carol.call("join", {"room": private}))["ok"]
        assert (await carol.send(private, "thanks"))["ok"]
    finally:
        await carol.close()


async def ended_by(client: ChatClient, action: Callable[[], Awaitable[object]]) -> str:
    """Run ``action``; the client's socket must be ended (bounded wait): returns why."""
    await action()
    return await client.end_reason()


async def test_logout_disconnects_the_live_socket(server: LiveServer) -> None:
    await server.make_user("alice")
    async with server.client() as http:
        from tests.conftest import login
        await login(http, "alice")
        chat = await connected(server, cookie=http.cookies["streamzy_session"])
        assert await ended_by(chat, lambda: post_form(http, "/logout")) == "logout"


async def test_admin_disable_disconnects_the_live_socket(server: LiveServer) -> None:
    room = await make_room(server, "general")
    alice = await connected(server, "alice")
    await alice.call("join", {"room": room})
    admin = await server.services.accounts.by_username("roomadmin")
    user = await server.services.accounts.by_username("alice")
    from streamzy.guards.context import SYSTEM
    assert await ended_by(
        alice, lambda: server.services.accounts.set_active(admin.id, user.id, False, SYSTEM)
    ) == "disabled"


async def test_expiry_is_noticed_on_the_next_event(server: LiveServer) -> None:
    room = await make_room(server, "general")
    alice = await connected(server, "alice")
    await alice.call("join", {"room": room})
    server.clock.advance(2 * 3600 + 5)
    ack = await alice.send(room, "still here?")
    assert not ack["ok"] and ack["code"] == "session_ended"
    assert await alice.end_reason() == "idle"


async def test_sending_counts_as_activity(server: LiveServer) -> None:
    room = await make_room(server, "general")
    alice = await connected(server, "alice")
    try:
        await alice.call("join", {"room": room})
        for _ in range(3):
            server.clock.advance(3600 + 600)
            assert (await alice.send(room, "keeping the session alive"))["ok"]
    finally:
        await alice.close()


async def test_blocked_patterns_are_refused_and_audited(server: LiveServer) -> None:
    room = await make_room(server, "general")
    alice = await connected(server, "alice")
    try:
        await alice.call("join", {"room": room})
        for hostile in ("<script>alert(1)</script>", "click javascript:alert(1)",
                        '<img src=x onerror="alert(1)">', "<IFRAME src=//evil>"):
            ack = await alice.send(room, hostile)
            assert not ack["ok"] and ack["code"] == "blocked", hostile
        assert (await alice.send(room, "a < b and c > d is fine"))["ok"]
    finally:
        await alice.close()
    assert len(await server.audit_rows("message_blocked")) == 4


@pytest.mark.parametrize(("payload", "code"), [
    ("just a string", "invalid_payload"),
    ({"room": 1, "client_msg_id": "x", "text": 5}, "invalid_input"),
    ({"room": 1, "client_msg_id": "bad id with spaces", "text": "hi"}, "invalid_input"),
    ({"room": 1, "client_msg_id": "x", "text": "hi", "extra": True}, "invalid_input"),
    ({"room": 1, "client_msg_id": "x"}, "invalid_input"),
    ({"room": 999, "client_msg_id": "x", "text": "hi"}, "unknown_room"),
    ({"room": 1, "client_msg_id": "x", "text": "   "}, "empty"),
    ({"room": 1, "client_msg_id": "x", "text": "bell\x07"}, "invalid_text"),
    ({"room": 1, "client_msg_id": "x", "text": "x" * 4001}, "too_long"),
    ({"room": 1, "client_msg_id": "x", "text": b"binary"}, "binary_not_supported"),
])
async def test_malformed_messages_get_error_acks(server: LiveServer, payload: object,
                                                 code: str) -> None:
    room = await make_room(server, "general")
    assert room == 1
    alice = await connected(server, "alice")
    try:
        await alice.call("join", {"room": room})
        ack = await alice.call("message", payload)
        assert ack["ok"] is False and ack["code"] == code
        assert (await alice.send(room, "the connection still works"))["ok"]
    finally:
        await alice.close()


async def test_unknown_event_and_oversized_packet(server: LiveServer) -> None:
    room = await make_room(server, "general")
    alice = await connected(server, "alice")
    bob = await connected(server, "bob")
    try:
        await bob.call("join", {"room": room})
        unknown = await alice.call("drop_tables", {"x": 1})
        assert unknown["code"] == "unknown_event"
        await alice.sio.emit("message", {"room": room, "client_msg_id": "big",
                                         "text": "y" * 100_000})
        await wait_until(alice.disconnected.is_set, what="the cut-off")  # cut off, not crashed
        assert (await bob.send(room, "others are unaffected"))["ok"]
    finally:
        await alice.close()
        await bob.close()
    async with server.services.db.unit() as db:
        from sqlalchemy import select
        texts = (await db.execute(select(Message.client_msg_id))).scalars().all()
        assert "big" not in texts


async def test_message_rate_limit_with_retry_after(server: LiveServer) -> None:
    room = await make_room(server, "general")
    alice = await connected(server, "alice")
    try:
        await alice.call("join", {"room": room})
        for k in range(30):
            assert (await alice.send(room, f"m{k}"))["ok"]
        limited = await alice.send(room, "one too many")
        assert not limited["ok"] and limited["code"] == "rate_limited"
        assert 0 < limited["retry_after"] <= 2
        for _ in range(5):
            await alice.send(room, "still too many")
        server.clock.advance(limited["retry_after"])
        assert (await alice.send(room, "allowed again"))["ok"]
    finally:
        await alice.close()
    assert len(await server.audit_rows("rate_limited")) == 1  # not one row per refusal


async def test_tampered_ciphertext_is_an_unreadable_marker(server: LiveServer) -> None:
    room = await make_room(server, "general")
    alice = await connected(server, "alice")
    try:
        await alice.call("join", {"room": room})
        first = await alice.send(room, "original")
        await alice.send(room, "intact")
        async with server.services.db.unit() as db:
            await db.execute(update(Message).where(Message.id == first["id"])
                             .values(ciphertext=b"gAAAAAtampered-bytes"))
        history = await alice.call("history", {"room": room})
        assert history["ok"]
        marker, intact = history["messages"]
        assert marker["unreadable"] and marker["text"] == "[unreadable message]"
        assert intact["text"] == "intact" and not intact["unreadable"]
    finally:
        await alice.close()
    assert len(await server.audit_rows("message_unreadable")) == 1


async def test_typing_and_presence_reach_the_room(server: LiveServer) -> None:
    room = await make_room(server, "general")
    alice = await connected(server, "alice")
    bob = await connected(server, "bob")
    try:
        await alice.call("join", {"room": room})
        joined = await bob.call("join", {"room": room})
        assert {u["username"] for u in joined["online"]} == {"alice", "bob"}
        await alice.wait_for(lambda: any(
            name == "presence" and [u["username"] for u in data["joined"]] == ["bob"]
            for name, data in alice.events))
        assert (await bob.call("typing", {"room": room}))["ok"]
        await alice.wait_for(lambda: any(
            n == "typing" and [u["username"] for u in d["users"]] == ["bob"]
            for n, d in alice.events))
        bob_id = joined["online"][-1]["id"]
        await bob.close()
        await alice.wait_for(lambda: any(
            name == "presence" and data["left"] == [bob_id] and data["online_count"] == 1
            for name, data in alice.events))
    finally:
        await alice.close()


async def test_leaving_ends_membership_for_every_connection(server: LiveServer) -> None:
    room = await make_room(server, "general")
    cookie = await signed_in_cookie(server, "dana")
    tab_one = await connected(server, cookie=cookie)
    tab_two = await connected(server, cookie=cookie)
    try:
        await tab_one.call("join", {"room": room})
        await tab_two.call("join", {"room": room})
        assert (await tab_two.send(room, "hi"))["ok"]
        assert (await tab_one.call("leave", {"room": room}))["ok"]
        refused = await tab_two.send(room, "still here?")
        assert not refused["ok"] and refused["code"] == "not_a_member"
    finally:
        await tab_one.close()
        await tab_two.close()


async def test_polling_without_an_origin_header_is_answered_not_crashed(
        server: LiveServer) -> None:
    async with server.client() as http:  # what a same-origin browser GET sends: no Origin
        handshake = await http.get("/socket.io/?EIO=4&transport=polling")
        stale = await http.get("/socket.io/?EIO=4&transport=polling&sid=gone-after-restart")
    assert handshake.status_code == 200 and '"sid"' in handshake.text
    assert stale.status_code == 400
    assert await server.audit_rows("socket_refused") == []  # no Origin is not a foreign one
