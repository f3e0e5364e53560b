"""Edits, deletes, reactions, replies and mentions over Socket.IO, as a bot or browser
speaks it (python-socketio's client), against the real server and database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from streamzy.guards.context import SYSTEM
from tests.conftest import LiveServer
from tests.realtime.helpers import ChatClient, connected, make_room

pytestmark = pytest.mark.asyncio


@pytest.fixture
def server_settings() -> dict[str, Any]:
    return {"reactions_per_message": 3, "edit_window_seconds": 600}


async def pair(server: LiveServer, room: int) -> tuple[ChatClient, ChatClient]:
    alice = await connected(server, "alice", rooms=[room])
    bob = await connected(server, "bob", rooms=[room])
    return alice, bob


def changes_of(client: ChatClient, kind: str) -> list[dict[str, Any]]:
    return [c for c in client.received("message_changed") if c["kind"] == kind]


async def test_edit_reaches_the_room_and_history(server: LiveServer) -> None:
    room = await make_room(server, "general")
    alice, bob = await pair(server, room)
    try:
        sent = await alice.send(room, "helo wrold")
        edited = await alice.call("edit", {"room": room, "id": sent["id"], "text": "hello world"})
        assert edited["ok"] and edited["change_seq"] == 1 and edited["edited_at"], edited
        await bob.wait_for(lambda: changes_of(bob, "edit"))
        change = changes_of(bob, "edit")[0]
        assert change["room"] == room and change["change_seq"] == 1
        assert change["message"]["text"] == "hello world"
        assert change["message"]["edited_at"] and change["message"]["seq"] == sent["seq"]
        page = await bob.call("history", {"room": room})
        assert [m["text"] for m in page["messages"]] == ["hello world"]
        assert page["messages"][0]["edited_at"] is not None
        # Only one's own, only within the window, only with valid text.
        refused = await bob.call("edit", {"room": room, "id": sent["id"], "text": "mine now"})
        assert refused["code"] == "not_yours"
        empty = await alice.call("edit", {"room": room, "id": sent["id"], "text": "  "})
        assert empty["code"] == "empty"
        blocked = await alice.call("edit", {"room": room, "id": sent["id"],
                                            "text": "<script>alert(1)</script>"})
        assert blocked["code"] == "blocked"
        server.clock.advance(601)
        late = await alice.call("edit", {"room": room, "id": sent["id"], "text": "too late"})
        assert late["code"] == "edit_window_closed"
        missing = await alice.call("edit", {"room": room, "id": 999999, "text": "x"})
        assert missing["code"] == "not_found"
    finally:
        await alice.close()
        await bob.close()


async def test_delete_destroys_the_text_and_moderators_may_delete_others(
        server: LiveServer) -> None:
    room = await make_room(server, "general")
    alice, bob = await pair(server, room)
    moderator = await connected(server, "mod", rooms=[room])
    try:
        first = await alice.send(room, "DELETE-ME-PLEASE")
        second = await alice.send(room, "also bad")
        assert (await bob.call("delete", {"room": room, "id": first["id"]}))["code"] == \
            "forbidden"
        gone = await alice.call("delete", {"room": room, "id": first["id"]})
        assert gone["ok"] and gone["change_seq"] == 1
        await bob.wait_for(lambda: changes_of(bob, "delete"))
        state = changes_of(bob, "delete")[0]["message"]
        assert state["deleted"] is True and state["text"] == "" and state["id"] == first["id"]
        again = await alice.call("delete", {"room": room, "id": first["id"]})
        assert again["code"] == "deleted"
        # A room moderator (here: its owner's role) deletes someone else's message.
        await server.services.db.run_transaction(_make_moderator, room, "mod")
        by_mod = await moderator.call("delete", {"room": room, "id": second["id"],
                                                 "reason": "spam"})
        assert by_mod["ok"], by_mod
    finally:
        for client in (alice, bob, moderator):
            await client.close()
    async with server.services.db.unit() as db:
        rows = (await db.execute(text("SELECT id, ciphertext, deleted_at FROM messages "
                                      "ORDER BY id"))).all()
    assert [bytes(r[1]) for r in rows] == [b"", b""] and all(r[2] for r in rows)
    audits = await server.audit_rows("message_deleted")
    assert ['"by": "sender"' in a.detail for a in audits] == [True, False]
    assert '"by": "moderator"' in audits[1].detail and '"reason": "spam"' in audits[1].detail
    assert_not_in_database(server, b"DELETE-ME-PLEASE")


def _make_moderator(tx: Any, room: int, username: str) -> None:
    user = tx.rows(text("SELECT id FROM users WHERE username = :u"), {"u": username})[0][0]
    tx.rows(text("UPDATE memberships SET role = 'moderator' WHERE room_id = :r "
                 "AND user_id = :u RETURNING role"), {"r": room, "u": user})


async def test_reactions_toggle_with_counts_and_are_bounded(server: LiveServer) -> None:
    room = await make_room(server, "general")
    alice, bob = await pair(server, room)
    try:
        sent = await alice.send(room, "react to me")
        one = await alice.call("react", {"room": room, "id": sent["id"], "emoji": "👍"})
        two = await bob.call("react", {"room": room, "id": sent["id"], "emoji": "👍"})
        assert one["added"] is True and two["added"] is True
        await alice.wait_for(lambda: len(changes_of(alice, "react")) == 2)
        latest = changes_of(alice, "react")[-1]["message"]
        me, other = latest["reactions"][0]["users"]
        assert latest["reactions"] == [{"emoji": "👍", "count": 2, "users": [me, other]}]
        off = await bob.call("react", {"room": room, "id": sent["id"], "emoji": "👍"})
        assert off["added"] is False
        await alice.wait_for(lambda: len(changes_of(alice, "react")) == 3)
        assert changes_of(alice, "react")[-1]["message"]["reactions"][0]["count"] == 1
        for emoji in ("🎉", "❤️"):
            assert (await bob.call("react", {"room": room, "id": sent["id"],
                                             "emoji": emoji}))["ok"]
        full = await bob.call("react", {"room": room, "id": sent["id"], "emoji": "🚀"})
        assert full["code"] == "too_many_reactions"
        # An existing kind can still be added by someone else.
        assert (await alice.call("react", {"room": room, "id": sent["id"],
                                           "emoji": "🎉"}))["added"] is True
        for hostile in ("hello", "<b>", "👍<script>", "a" * 40, ""):
            answer = await bob.call("react", {"room": room, "id": sent["id"],
                                              "emoji": hostile})
            assert answer["ok"] is False and answer["code"] in {"invalid_emoji",
                                                                  "invalid_input"}, hostile
        page = await bob.call("history", {"room": room})
        counts = {r["emoji"]: r["count"] for r in page["messages"][0]["reactions"]}
        assert counts == {"👍": 1, "🎉": 2, "❤️": 1}
    finally:
        await alice.close()
        await bob.close()


async def test_reply_quotes_its_parent_from_the_same_room_only(server: LiveServer) -> None:
    room = await make_room(server, "general")
    other = await make_room(server, "other")
    alice, bob = await pair(server, room)
    try:
        parent = await alice.send(room, "what time is the meeting?")
        reply = await bob.call("message", {"room": room, "client_msg_id": "r1",
                                           "text": "at noon", "reply_to": parent["id"]})
        assert reply["ok"], reply
        await alice.wait_for(lambda: "at noon" in alice.texts(room))
        delivered = next(m for m in alice.messages if m["text"] == "at noon")
        assert delivered["reply_to"] == {
            "id": parent["id"], "seq": parent["seq"], "deleted": False,
            "text": "what time is the meeting?",
            "sender": {"id": delivered["reply_to"]["sender"]["id"], "username": "alice",
                       "display_name": "Alice", "bot": False}}
        assert (await bob.call("join", {"room": other}))["ok"]
        elsewhere = await bob.call("message", {"room": other, "client_msg_id": "r2",
                                               "text": "x", "reply_to": parent["id"]})
        assert elsewhere["code"] == "reply_not_found"
        # The parent deleted: the quote says so and keeps no text.
        await alice.call("delete", {"room": room, "id": parent["id"]})
        page = await alice.call("history", {"room": room})
        quoted = page["messages"][-1]["reply_to"]
        assert quoted["deleted"] is True and quoted["text"] == ""
    finally:
        await alice.close()
        await bob.close()


async def test_a_client_that_was_away_gets_edits_deletes_and_reactions(
        server: LiveServer) -> None:
    room = await make_room(server, "general")
    alice, bob = await pair(server, room)
    try:
        sent = [await alice.send(room, f"message {n}") for n in range(5)]
        joined = await bob.call("join", {"room": room})
        seen_seq = max(m["seq"] for m in joined["messages"])
        seen_change = joined["last_change"]
        await bob.close()
        await alice.call("edit", {"room": room, "id": sent[0]["id"], "text": "message 0 fixed"})
        await alice.call("delete", {"room": room, "id": sent[1]["id"]})
        await alice.call("react", {"room": room, "id": sent[2]["id"], "emoji": "🎉"})
        await alice.send(room, "a new one")
        back = await connected(server, cookie=bob.cookie)
        resumed = await back.call("join", {"room": room, "since_seq": seen_seq,
                                           "since_change": seen_change})
        assert resumed["ok"] and resumed["mode"] == "since"
        assert [m["text"] for m in resumed["messages"]] == ["a new one"]
        changed = {m["id"]: m for m in resumed["changes"]}
        assert [m["change_seq"] for m in resumed["changes"]] == [1, 2, 3]
        assert changed[sent[0]["id"]]["text"] == "message 0 fixed"
        assert changed[sent[1]["id"]]["deleted"] is True
        assert changed[sent[2]["id"]]["reactions"][0]["emoji"] == "🎉"
        assert resumed["last_change"] == 3 and resumed["has_more_changes"] is False
        # Nothing changed since: an empty list, not a replay.
        again = await back.call("join", {"room": room, "since_seq": seen_seq + 1,
                                         "since_change": 3})
        assert again["changes"] == []
        await back.close()
    finally:
        await alice.close()


async def test_mentions_notify_the_named_and_count_until_read(server: LiveServer) -> None:
    room = await make_room(server, "general")
    quiet = await make_room(server, "quiet")
    alice = await connected(server, "alice", rooms=[room])
    bob = await connected(server, "bob", rooms=[quiet])
    try:
        assert (await bob.call("join", {"room": room}))["ok"]
        watched = await bob.call("watch", {"rooms": [room, quiet, 424242]})
        assert sorted(r["id"] for r in watched["rooms"]) == sorted([room, quiet])
        await alice.send(room, "hey @bob, and `@carol` in code is nobody; mail@bob.org neither")
        await bob.wait_for(lambda: bob.received("notify"))
        notice = bob.received("notify")[0]
        assert notice["kind"] == "mention" and notice["room"] == room
        assert notice["sender"]["username"] == "alice"
        await bob.wait_for(lambda: bob.received("activity"))
        assert bob.received("activity")[0] == {"room": room, "last_seq": 1}
        bob_id = (await server.services.accounts.by_username("bob")).id  # type: ignore[union-attr]
        message = next(m for m in bob.messages if m["room"] == room)
        assert message["mentions"] == [bob_id] and message["mentions_room"] is False
        views = {v.id: v for v in await server.services.rooms.visible(bob_id)}
        assert views[room].mentions == 1
        await alice.send(room, "@room lunch?")
        views = {v.id: v for v in await server.services.rooms.visible(bob_id)}
        assert views[room].mentions == 2
        await bob.call("read", {"room": room, "seq": 2})
        views = {v.id: v for v in await server.services.rooms.visible(bob_id)}
        assert views[room].mentions == 0
        # The sender's own @room does not count for them.
        alice_id = (await server.services.accounts.by_username("alice")).id  # type: ignore[union-attr]
        assert {v.id: v for v in await server.services.rooms.visible(alice_id)}[room].mentions \
            == 0
    finally:
        await alice.close()
        await bob.close()


async def test_changes_refused_to_non_members_and_bad_payloads(server: LiveServer) -> None:
    room = await make_room(server, "private", private=True)
    owner = await connected(server, "owner")
    outsider = await connected(server, "outsider")
    try:
        await server.services.rooms.invite(
            (await server.services.accounts.by_username("roomadmin")).id,  # type: ignore[union-attr]
            room, "owner", SYSTEM)
        assert (await owner.call("join", {"room": room}))["ok"]
        sent = await owner.send(room, "private words")
        for event, extra in (("edit", {"text": "mine"}), ("delete", {}),
                             ("react", {"emoji": "👍"})):
            answer = await outsider.call(event, {"room": room, "id": sent["id"], **extra})
            assert answer["code"] == "not_a_member", (event, answer)
        for bad in (None, [], {"room": room}, {"room": room, "id": "1", "text": "x"},
                    {"room": room, "id": -1, "text": "x"}, {"room": room, "id": 2**70,
                                                             "text": "x"},
                    {"room": room, "id": sent["id"], "text": "x", "extra": 1}):
            answer = await owner.call("edit", bad)
            assert answer["ok"] is False and answer["code"] in {"invalid_input",
                                                                "invalid_payload"}, bad
    finally:
        await owner.close()
        await outsider.close()


DUMPS = {"messages": text("SELECT * FROM messages"),
         "reactions": text("SELECT * FROM reactions"),
         "mentions": text("SELECT * FROM mentions"), "rooms": text("SELECT * FROM rooms")}


def assert_not_in_database(server: LiveServer, needle: bytes) -> None:
    url = server.services.settings.database_url
    if url.startswith("sqlite"):
        db_path = Path(url.split(":///", 1)[1])
        for path in db_path.parent.glob(db_path.name + "*"):
            assert needle not in path.read_bytes(), path


async def test_no_plaintext_of_edits_reactions_or_replies_in_the_database(
        server: LiveServer) -> None:
    room = await make_room(server, "general")
    alice, bob = await pair(server, room)
    try:
        sent = await alice.send(room, "ORIGINAL-QUOKKA")
        await alice.call("edit", {"room": room, "id": sent["id"], "text": "EDITED-PANGOLIN"})
        await bob.call("react", {"room": room, "id": sent["id"], "emoji": "🦔"})
        await bob.call("message", {"room": room, "client_msg_id": "r", "reply_to": sent["id"],
                                   "text": "REPLY-AXOLOTL"})
        page = await bob.call("history", {"room": room})
        assert page["messages"][0]["text"] == "EDITED-PANGOLIN"
        assert page["messages"][0]["reactions"][0]["emoji"] == "🦔"
    finally:
        await alice.close()
        await bob.close()
    for needle in ("ORIGINAL-QUOKKA", "EDITED-PANGOLIN", "REPLY-AXOLOTL", "🦔"):
        assert_not_in_database(server, needle.encode())
    async with server.services.db.unit() as db:
        for table, statement in DUMPS.items():
            dump = " ".join(str(r) for r in (await db.execute(statement)).all())
            for needle in ("QUOKKA", "PANGOLIN", "AXOLOTL", "🦔",
                           "\\xf0\\x9f\\xa6\\x94"):
                assert needle not in dump, (table, needle)


async def test_direct_messages_are_found_by_their_people_and_private(
        server: LiveServer) -> None:
    alice = await connected(server, "alice")
    bob = await connected(server, "bob")
    carol = await connected(server, "carol")
    try:
        opened = await alice.call("dm", {"users": ["bob"]})
        assert opened["ok"] and opened["created"] is True, opened
        dm = opened["room"]
        assert dm["kind"] == "dm" and dm["private"] is True
        assert sorted(p["username"] for p in dm["members"]) == ["alice", "bob"]
        again = await alice.call("dm", {"users": ["BOB"]})
        from_bob = await bob.call("dm", {"users": ["alice"]})
        assert again["room"]["id"] == from_bob["room"]["id"] == dm["id"]
        assert again["created"] is False and from_bob["created"] is False
        joined = await bob.call("join", {"room": dm["id"]})
        assert joined["ok"] and joined["room"]["kind"] == "dm"
        assert len(joined["room"]["members"]) == 2
        assert (await alice.call("join", {"room": dm["id"]}))["ok"]
        assert (await alice.send(dm["id"], "just us"))["ok"]
        await bob.wait_for(lambda: "just us" in bob.texts(dm["id"]))
        # Carol can neither join nor see it; the admin console does not list it.
        assert (await carol.call("join", {"room": dm["id"]}))["code"] == "not_a_member"
        listed = await carol.call("rooms")
        assert dm["id"] not in [r["id"] for r in listed["rooms"]]
        assert dm["id"] not in [r.id for r in await server.services.rooms.all_rooms()]
        bobs = {r["id"]: r for r in (await bob.call("rooms"))["rooms"]}
        assert bobs[dm["id"]]["kind"] == "dm" and bobs[dm["id"]]["title"] == "Alice"
        # Leaving a DM and opening it again with the same people: the same room, back in.
        assert (await bob.call("leave", {"room": dm["id"]}))["ok"]
        assert (await bob.call("join", {"room": dm["id"]}))["code"] == "not_a_member"
        back = await bob.call("dm", {"users": ["alice"]})
        assert back["room"]["id"] == dm["id"] and len(back["room"]["members"]) == 2
        assert (await bob.call("join", {"room": dm["id"]}))["ok"]
        group = await carol.call("dm", {"users": ["alice", "bob"]})
        assert group["ok"] and group["room"]["id"] != dm["id"]
        assert len(group["room"]["members"]) == 3
        for bad, code in ((["nobody-here"], "no_user"), ([], "invalid_input"),
                          ([f"u{n}" for n in range(8)], "invalid_input"),
                          (["carol"], "invalid_input")):
            answer = await carol.call("dm", {"users": bad})
            assert answer["ok"] is False and answer["code"] == code, (bad, answer)
    finally:
        for client in (alice, bob, carol):
            await client.close()


async def test_dm_notifies_members_watching_from_elsewhere(server: LiveServer) -> None:
    """Even a DM created after the reader's page last watched its rooms reaches them."""
    alice = await connected(server, "alice")
    bob = await connected(server, "bob")
    try:
        assert (await bob.call("watch", {"rooms": []}))["ok"]
        assert (await alice.call("watch", {"rooms": []}))["ok"]
        dm = (await alice.call("dm", {"users": ["bob"]}))["room"]
        assert (await alice.call("join", {"room": dm["id"]}))["ok"]
        await alice.send(dm["id"], "psst")
        await alice.send(dm["id"], "@bob look")
        await bob.wait_for(lambda: len(bob.received("notify")) == 2)
        first, second = bob.received("notify")
        assert first["kind"] == "dm" and first["text"] == "psst" and first["room"] == dm["id"]
        assert first["room_name"] == dm["name"] and first["sender"]["username"] == "alice"
        assert second["kind"] == "mention"  # named in a DM: one notice, as a mention
        await alice.send(dm["id"], "marker")
        await bob.wait_for(lambda: len(bob.received("notify")) == 3)
        assert alice.received("notify") == []  # never told of one's own messages
    finally:
        await alice.close()
        await bob.close()


async def test_bots_take_direct_messages_only_where_allowed(server: LiveServer) -> None:
    alice = await connected(server, "alice")
    try:
        admin = await server.make_user("boss", admin=True)
        bot, token = await server.services.bots.create(admin.id, "helperbot", "Helper", [],
                                                       SYSTEM)
        refused = await alice.call("dm", {"users": ["helperbot"]})
        assert refused["code"] == "dm_not_allowed"
        await server.services.bots.allow_dms(admin.id, bot.id, True, SYSTEM)
        allowed = await alice.call("dm", {"users": ["helperbot"]})
        assert allowed["ok"], allowed
        robot = await connected(server, token=token)
        try:
            assert (await robot.call("join", {"room": allowed["room"]["id"]}))["ok"]
            assert (await robot.call("dm", {"users": ["alice"]}))["code"] == "dm_not_allowed"
        finally:
            await robot.close()
        audits = [a.event for a in await server.audit_rows()]
        assert "bot_dms_allowed" in audits and "dm_created" in audits
    finally:
        await alice.close()


async def test_a_first_join_says_who_may_moderate_and_an_ongoing_mute(
        server: LiveServer) -> None:
    room = await make_room(server, "general")
    lou = await connected(server, "lou")
    try:
        joined = await lou.call("join", {"room": room})
        assert joined["room"]["can_moderate"] is False
        assert joined["room"]["muted_until"] is None
        admin = await server.services.accounts.by_username("roomadmin")
        target = await server.services.accounts.by_username("lou")
        assert admin is not None and target is not None
        await server.services.moderation.mute(admin.id, room, target.id, 30, "", SYSTEM)
        again = await lou.call("join", {"room": room})
        assert again["room"]["muted_until"].startswith("20"), again["room"]
        server.clock.advance(31 * 60)
        later = await lou.call("join", {"room": room})
        assert later["room"]["muted_until"] is None
        resumed = await lou.call("join", {"room": room, "since_seq": 0})
        assert "muted_until" not in resumed["room"]  # a reconnect's catch-up leaves it out
    finally:
        await lou.close()
