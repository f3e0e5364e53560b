"""Send, ack, broadcast, storage, idempotency, order, resume and history over Socket.IO."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select, text

from streamzy.storage.models import Message
from tests.conftest import LiveServer
from tests.realtime.helpers import ChatClient, connected, make_room


async def test_send_ack_and_broadcast(server: LiveServer) -> None:
    room = await make_room(server, "general")
    alice = await connected(server, "alice")
    bob = await connected(server, "bob")
    try:
        assert (await alice.call("join", {"room": room}))["ok"]
        assert (await bob.call("join", {"room": "general"}))["ok"]
        ack = await alice.send(room, "hello bob")
        assert ack["ok"] and ack["seq"] == 1 and ack["id"] > 0 and not ack["duplicate"]
        await bob.wait_for(lambda: bob.texts(room) == ["hello bob"])
        message = bob.messages[0]
        assert message["sender"]["username"] == "alice" and message["seq"] == 1
    finally:
        await alice.close()
        await bob.close()


async def test_database_holds_only_ciphertext(server: LiveServer) -> None:
    room = await make_room(server, "secrets")
    alice = await connected(server, "alice")
    try:
        await alice.call("join", {"room": room})
        secret = "the launch code is 0000-ZEBRA-PLAINTEXT"
        assert (await alice.send(room, secret))["ok"]
    finally:
        await alice.close()
    url = server.services.settings.database_url
    if url.startswith("sqlite"):  # the file itself, write-ahead log included
        db_path = Path(url.split(":///", 1)[1])
        for path in (db_path, Path(f"{db_path}-wal")):
            if path.exists():
                assert b"ZEBRA" not in path.read_bytes()
    async with server.services.db.unit() as db:
        stored = (await db.execute(select(Message))).scalar_one()
        assert b"ZEBRA" not in stored.ciphertext and stored.ciphertext.startswith(b"gAAAA")
        dump = " ".join(str(r) for r in (await db.execute(text("SELECT * FROM messages"))).all())
        assert "ZEBRA" not in dump


async def test_retry_with_same_client_id_is_idempotent(server: LiveServer) -> None:
    room = await make_room(server, "general")
    alice = await connected(server, "alice")
    try:
        await alice.call("join", {"room": room})
        first = await alice.send(room, "only once", "retry-1")
        second = await alice.send(room, "only once", "retry-1")
        assert (second["id"], second["seq"]) == (first["id"], first["seq"])
        assert second["duplicate"] is True
        await alice.send(room, "marker", "retry-2")
        await alice.wait_for(lambda: "marker" in alice.texts(room))
        assert alice.texts(room).count("only once") == 1
    finally:
        await alice.close()
    async with server.services.db.unit() as db:
        assert len((await db.execute(select(Message))).scalars().all()) == 2


async def test_order_under_ten_concurrent_senders(server: LiveServer) -> None:
    room = await make_room(server, "busy")
    senders = [await connected(server, f"sender{i}") for i in range(10)]
    watcher = await connected(server, "watcher")
    try:
        for client in [*senders, watcher]:
            assert (await client.call("join", {"room": room}))["ok"]

        async def burst(client: ChatClient, n: int) -> list[dict]:
            return [await client.send(room, f"{n}-{k}") for k in range(5)]

        acks = await asyncio.gather(*(burst(c, i) for i, c in enumerate(senders)))
        seqs = sorted(a["seq"] for batch in acks for a in batch)
        assert seqs == list(range(1, 51))
        for batch in acks:  # each sender's own messages keep their order
            assert [a["seq"] for a in batch] == sorted(a["seq"] for a in batch)
        await watcher.wait_for(lambda: len(watcher.messages) == 50)
        received = [m["seq"] for m in watcher.messages]
        assert received == list(range(1, 51))  # delivered in sequence order
        history = await watcher.call("history", {"room": room, "limit": 100})
        assert [m["seq"] for m in history["messages"]] == list(range(1, 51))
    finally:
        for client in [*senders, watcher]:
            await client.close()


async def test_resume_after_disconnect_gets_every_missed_message_once(
        server: LiveServer) -> None:
    room = await make_room(server, "general")
    alice = await connected(server, "alice")
    bob = await connected(server, "bob")
    try:
        await alice.call("join", {"room": room})
        await bob.call("join", {"room": room})
        await alice.send(room, "before")
        await bob.wait_for(lambda: bob.texts(room) == ["before"])
        last_seen = bob.messages[-1]["seq"]
        await bob.close()
        for k in range(7):
            await alice.send(room, f"while away {k}")
        bob = await connected(server, cookie=bob.cookie)
        joined = await bob.call("join", {"room": room, "since_seq": last_seen})
        assert joined["ok"] and joined["mode"] == "since"
        assert [m["text"] for m in joined["messages"]] == [f"while away {k}" for k in range(7)]
        await alice.send(room, "live again")
        await bob.wait_for(lambda: "live again" in bob.texts(room))
        seen = [m["seq"] for m in joined["messages"]] + [m["seq"] for m in bob.messages]
        assert seen == sorted(set(seen))  # in order, no duplicates
    finally:
        await alice.close()
        await bob.close()


async def test_history_paging(server: LiveServer) -> None:
    room = await make_room(server, "archive")
    alice = await connected(server, "alice")
    try:
        await alice.call("join", {"room": room})
        for k in range(25):
            await alice.send(room, f"m{k}")
        page = await alice.call("history", {"room": room, "limit": 10})
        assert [m["text"] for m in page["messages"]] == [f"m{k}" for k in range(15, 25)]
        assert page["has_more"]
        older = await alice.call("history", {"room": room, "limit": 10,
                                             "before_seq": page["messages"][0]["seq"]})
        assert [m["text"] for m in older["messages"]] == [f"m{k}" for k in range(5, 15)]
        oldest = await alice.call("history", {"room": room, "limit": 10,
                                              "before_seq": older["messages"][0]["seq"]})
        assert [m["text"] for m in oldest["messages"]] == [f"m{k}" for k in range(5)]
        assert not oldest["has_more"]
        # What was delivered live is what the store gives back (ids, order, times).
        await alice.wait_for(lambda: len(alice.texts(room)) == 25)
        live = {m["seq"]: m for m in alice.messages if m["room"] == room}
        for stored in page["messages"] + older["messages"] + oldest["messages"]:
            assert {k: stored[k] for k in ("id", "created_at", "text", "sender")} == \
                {k: live[stored["seq"]][k] for k in ("id", "created_at", "text", "sender")}
        too_many = await alice.call("history", {"room": room, "limit": 1000})
        assert not too_many["ok"] and too_many["code"] == "invalid_input"
    finally:
        await alice.close()


async def test_one_clients_unawaited_sends_keep_their_order(server: LiveServer) -> None:
    room = await make_room(server, "pipeline")
    alice = await connected(server, "alice")
    try:
        await alice.call("join", {"room": room})
        # Fire 20 sends without waiting for acks, as a fast bot would.
        acks = await asyncio.gather(*(alice.send(room, f"p{k}", f"pipe-{k:02d}")
                                      for k in range(20)))
        assert [a["seq"] for a in acks] == list(range(1, 21))
        history = await alice.call("history", {"room": room})
        assert [m["text"] for m in history["messages"]] == [f"p{k}" for k in range(20)]
    finally:
        await alice.close()
