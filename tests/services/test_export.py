"""Exports without a server: what a person's and a room's exports hold, page by page, who
may export what, and the audit row."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import update

from streamzy.services.errors import Forbidden, NotFound
from streamzy.services.export import Export, Exports
from streamzy.storage.models import Message
from streamzy.wiring import Services
from tests.conftest import CLIENT, audit_rows
from tests.storage.backup_fixtures import SECRET_TEXTS, populate


async def document(export: Export) -> dict:
    return json.loads("".join([chunk async for chunk in export.chunks]))


def small_pages(services: Services) -> Exports:
    # Pages of 2 rows: every export below spans several pages.
    return Exports(services.db, services.keyring, services.audit_log.record, services.clock,
                   page=2)


async def test_a_person_exports_their_own_messages_in_every_room_and_dm(
        services: Services) -> None:
    people = await populate(services)
    exports = small_pages(services)
    alice = await document(await exports.for_user(people.alice.user_id, CLIENT))
    assert alice["export"]["scope"] == "user" and alice["export"]["user"] == "alice"
    texts = [(m["room"] if m["kind"] == "room" else "dm", m["text"]) for m in alice["messages"]]
    assert texts == [("general", SECRET_TEXTS[0]), ("dm", SECRET_TEXTS[2])]  # deleted: left out
    assert alice["count"] == 2

    bob_export = await exports.for_user(people.bob.user_id, CLIENT)
    assert bob_export.count == 2
    bob = await document(bob_export)
    assert [m["text"] for m in bob["messages"]] == [SECRET_TEXTS[1], SECRET_TEXTS[3]]
    reply, edited = bob["messages"]
    assert reply["reply_to"] == 1 and reply["seq"] == 2 and reply["edited_at"] is None
    assert edited["edited_at"] is not None
    assert "sender" not in reply  # one's own export: every message is one's own
    for other in (SECRET_TEXTS[0], SECRET_TEXTS[2], "deleted later"):
        assert other not in json.dumps(bob)


async def test_an_admin_exports_a_room_with_its_senders_page_by_page(
        services: Services) -> None:
    people = await populate(services)
    room = await services.rooms.get(people.room_id)
    assert room is not None
    for n in range(7):
        await services.messages.send(people.bob, room, f"more{n}", f"more {n}", CLIENT)
    rows: list[int] = []
    export = await small_pages(services).for_room(people.room_id, CLIENT,
                                                  actor_id=people.alice.user_id,
                                                  on_rows=rows.append)
    got = await document(export)
    assert export.count == got["count"] == 10
    assert [m["seq"] for m in got["messages"]] == [1, 2, 3, *range(5, 12)]  # 4 was deleted
    assert [m["sender"] for m in got["messages"][:3]] == ["alice", "bob", "bob"]
    assert got["messages"][0]["text"] == SECRET_TEXTS[0]
    assert rows == [2, 2, 2, 2, 2]


async def test_only_admins_export_rooms_and_nobody_exports_a_dm(services: Services) -> None:
    people = await populate(services)
    exports = services.exports
    with pytest.raises(Forbidden):
        await exports.for_room(people.room_id, CLIENT, actor_id=people.bob.user_id)
    with pytest.raises(Forbidden, match="Direct conversations"):
        await exports.for_room(people.dm_id, CLIENT, actor_id=people.alice.user_id)
    with pytest.raises(NotFound):
        await exports.for_room(999_999, CLIENT, actor_id=people.alice.user_id)
    assert [json.loads(r.detail)["scope"] for r in
            await audit_rows(services, "data_exported")] == []


async def test_exports_are_audited_with_scope_room_and_count(services: Services) -> None:
    people = await populate(services)
    await services.exports.for_user(people.bob.user_id, CLIENT)
    await services.exports.for_room(people.room_id, CLIENT, actor_id=people.alice.user_id)
    rows = await audit_rows(services, "data_exported")
    assert [(r.user_id, json.loads(r.detail)) for r in rows] == [
        (people.bob.user_id, {"scope": "user", "target_user_id": people.bob.user_id,
                              "count": 2}),
        (people.alice.user_id, {"scope": "room", "room_id": people.room_id, "count": 3}),
    ]
    assert all(SECRET_TEXTS[0] not in r.detail for r in rows)


async def test_an_unreadable_row_is_marked_not_skipped(services: Services) -> None:
    people = await populate(services)
    async with services.db.unit() as db:
        await db.execute(update(Message).where(Message.room_id == people.dm_id)
                         .values(ciphertext=b"gAAAAAtampered"))
    alice = await document(await services.exports.for_user(people.alice.user_id, CLIENT))
    dm_item = next(m for m in alice["messages"] if m["kind"] == "dm")
    assert dm_item["text"] is None and dm_item["unreadable"] is True
