"""The message service without a server: validate, seal, store, sequence, dedupe, history.

The writer (``services.messages``: submit / send) and the reads (``services.history``:
page / since), with the after-commit event bus.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from streamzy import wire
from streamzy.clock import ManualClock
from streamzy.services.errors import Invalid
from streamzy.services.events import MessagesStored
from streamzy.services.message_history import MessageHistory
from streamzy.services.message_writer import Sender
from streamzy.services.rooms import RoomInfo
from streamzy.storage.crypto import Keyring, MasterKeys
from streamzy.storage.models import Message, RoomKey
from streamzy.wiring import Services
from tests.conftest import CLIENT, audit_rows, make_user
from tests.waiting import wait_until

SECRET_TEXT = "the launch code is 0000-ZEBRA-PLAINTEXT"


async def room_and_sender(services: Services, name: str = "alice") -> tuple[RoomInfo, Sender]:
    admin = await make_user(services, "boss", admin=True)
    room = await services.rooms.create(admin.id, "general", "", False, CLIENT)
    user = await make_user(services, name)
    return room, Sender(user.id, user.username, user.display_name)


async def texts(services: Services, room: RoomInfo) -> list[str | None]:
    page, _ = await services.history.page(room.id, None, 100, CLIENT)
    return [m.text for m in page]


async def test_send_stores_and_sequences_per_room(services: Services) -> None:
    room, alice = await room_and_sender(services)
    first = await services.messages.send(alice, room, "c-1", "hello", CLIENT)
    second = await services.messages.send(alice, room, "c-2", "again", CLIENT)
    assert (first.seq, second.seq) == (1, 2) and first.id != second.id
    assert not first.duplicate and not second.duplicate
    page, has_more = await services.history.page(room.id, None, 10, CLIENT)
    assert [(m.seq, m.text, m.username, m.client_msg_id) for m in page] == [
        (1, "hello", "alice", "c-1"), (2, "again", "alice", "c-2")]
    assert not has_more
    assert (await services.rooms.get(room.id)).last_seq == 2  # type: ignore[union-attr]


async def test_a_retry_with_the_same_client_id_returns_the_first_ack(
        services: Services) -> None:
    room, alice = await room_and_sender(services)
    first = await services.messages.send(alice, room, "retry-1", "only once", CLIENT)
    again = await services.messages.send(alice, room, "retry-1", "only once", CLIENT)
    assert (again.id, again.seq, again.duplicate) == (first.id, first.seq, True)
    # Another sender may use the same client id: ids are per sender.
    bob = await make_user(services, "bob")
    theirs = await services.messages.send(Sender(bob.id, "bob", "Bob"), room, "retry-1", "mine",
                                          CLIENT)
    assert not theirs.duplicate and theirs.seq == 2
    assert await texts(services, room) == ["only once", "mine"]


async def test_the_database_holds_only_ciphertext(services: Services) -> None:
    room, alice = await room_and_sender(services)
    await services.messages.send(alice, room, "c-1", SECRET_TEXT, CLIENT)
    async with services.db.unit() as db:
        stored = (await db.execute(select(Message))).scalar_one()
        dump = " ".join(str(r) for r in (await db.execute(text("SELECT * FROM messages"))).all())
    assert stored.ciphertext.startswith(b"gAAAA") and b"ZEBRA" not in stored.ciphertext
    assert "ZEBRA" not in dump
    url = services.settings.database_url
    if url.startswith("sqlite"):  # the file itself, write-ahead log included
        db_path = Path(url.split(":///", 1)[1])
        for path in (db_path, Path(f"{db_path}-wal")):
            if path.exists():
                assert b"ZEBRA" not in path.read_bytes()
    assert await texts(services, room) == [SECRET_TEXT]


@pytest.mark.parametrize(("body", "code"), [
    ("", "empty"),
    ("   \n ", "empty"),
    ("x" * 4001, "too_long"),
    ("bell\x07", "invalid_text"),
    ("right-to-left \u202e override", "invalid_text"),
])
async def test_invalid_text_is_refused_and_nothing_is_stored(services: Services, body: str,
                                                             code: str) -> None:
    room, alice = await room_and_sender(services)
    with pytest.raises(Invalid) as refused:
        await services.messages.send(alice, room, "c-1", body, CLIENT)
    assert refused.value.code == code
    assert await texts(services, room) == []


async def test_text_is_normalised_before_it_is_stored(services: Services) -> None:
    room, alice = await room_and_sender(services)
    await services.messages.send(alice, room, "c-1", "  cafe\u0301\r\nline two  ", CLIENT)
    assert await texts(services, room) == ["caf\u00e9\nline two"]


async def test_hostile_markup_is_blocked_and_audited(services: Services) -> None:
    room, alice = await room_and_sender(services)
    with pytest.raises(Invalid) as blocked:
        await services.messages.send(alice, room, "c-1", "<script>alert(1)</script>", CLIENT)
    assert blocked.value.code == "blocked"
    [row] = await audit_rows(services, "message_blocked")
    assert row.user_id == alice.user_id and json.loads(row.detail)["pattern"] == "script_tag"
    assert "alert" not in row.detail  # the audit names the pattern, not the text
    assert await texts(services, room) == []


async def test_concurrent_senders_get_one_gapless_sequence(services: Services) -> None:
    room, alice = await room_and_sender(services)
    others = [await make_user(services, f"sender{i}") for i in range(4)]
    senders = [alice] + [Sender(u.id, u.username, u.display_name) for u in others]
    acks = await asyncio.gather(*(services.messages.send(s, room, f"{s.username}-{k}",
                                                         f"{s.username} {k}", CLIENT)
                                  for s in senders for k in range(5)))
    assert sorted(a.seq for a in acks) == list(range(1, 26))
    page, _ = await services.history.page(room.id, None, 100, CLIENT)
    assert [m.seq for m in page] == list(range(1, 26))
    for s in senders:  # each sender's messages keep the order they were sent in
        own = [m.text for m in page if m.sender_id == s.user_id]
        assert own == [f"{s.username} {k}" for k in range(5)]


async def test_subscribers_hear_of_a_message_only_after_it_is_stored(
        services: Services) -> None:
    room, alice = await room_and_sender(services)
    heard: list[tuple[list[int], list[int | None]]] = []

    async def publish(event: MessagesStored) -> None:
        page, _ = await services.history.page(room.id, None, 100, CLIENT)
        heard.append(([m.seq for m in event.messages], [m.seq for m in page]))

    services.events.subscribe(MessagesStored, publish)
    ack = await services.messages.send(alice, room, "c-1", "hello", CLIENT)
    await services.messages.send(alice, room, "c-1", "hello", CLIENT)  # a retry: no news
    await services.messages.send(alice, room, "c-2", "marker", CLIENT)
    # Acked first, announced after: wait for the marker's announcement (they come in order).
    await wait_until(lambda: any(seqs == [2] for seqs, _ in heard), what="the marker")
    assert heard[0] == ([ack.seq], [ack.seq])  # already readable when announced
    assert [seqs for seqs, _ in heard] == [[1], [2]]


async def test_history_pages_backwards_and_since_catches_up(services: Services) -> None:
    room, alice = await room_and_sender(services)
    for k in range(25):
        await services.messages.send(alice, room, f"c-{k}", f"m{k}", CLIENT)
    newest, more = await services.history.page(room.id, None, 10, CLIENT)
    assert [m.text for m in newest] == [f"m{k}" for k in range(15, 25)] and more
    older, more = await services.history.page(room.id, newest[0].seq, 10, CLIENT)
    assert [m.text for m in older] == [f"m{k}" for k in range(5, 15)] and more
    oldest, more = await services.history.page(room.id, older[0].seq, 10, CLIENT)
    assert [m.text for m in oldest] == [f"m{k}" for k in range(5)] and not more

    missed, more = await services.history.since(room.id, 20, 100, CLIENT)
    assert [m.seq for m in missed] == [21, 22, 23, 24, 25] and not more
    first_part, more = await services.history.since(room.id, 0, 10, CLIENT)
    assert [m.seq for m in first_part] == list(range(1, 11)) and more


async def test_rooms_do_not_share_messages_or_sequences(services: Services) -> None:
    room, alice = await room_and_sender(services)
    admin = await services.accounts.by_username("boss")
    assert admin is not None
    other = await services.rooms.create(admin.id, "other", "", False, CLIENT)
    await services.messages.send(alice, room, "c-1", "in general", CLIENT)
    ack = await services.messages.send(alice, other, "c-2", "in other", CLIENT)
    assert ack.seq == 1
    assert await texts(services, other) == ["in other"]
    assert await texts(services, room) == ["in general"]


async def test_a_message_whose_key_is_gone_reads_as_unreadable_and_is_audited_once(
        services: Services, clock: ManualClock) -> None:
    room, alice = await room_and_sender(services)
    await services.messages.send(alice, room, "c-1", "soon shredded", CLIENT)
    async with services.db.unit() as db:
        await db.execute(update(RoomKey).where(RoomKey.room_id == room.id)
                         .values(wrapped_key=None, destroyed_at=clock.now()))
    # A process that has not cached the room key (the writer's keyring has it in memory).
    master = MasterKeys([k.get_secret_value() for k in services.settings.message_keys])
    history = MessageHistory(services.db, Keyring(services.db, master, clock),
                             services.audit_log.record)
    for _ in range(2):
        [message] = (await history.page(room.id, None, 10, CLIENT))[0]
        assert message.text is None
        shown = wire.message(message)
        assert shown["unreadable"] and shown["text"] != "soon shredded"
    assert len(await audit_rows(services, "message_unreadable")) == 1
