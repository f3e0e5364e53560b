"""Retention with the ManualClock: messages past their room's period (or the server's)
are purged in batches, and what stays still behaves: history, catch-up from an old
since_seq, replies to purged parents, unread and mention counts."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from streamzy.clock import ManualClock
from streamzy.services import retention as retention_module
from streamzy.services.errors import Forbidden, Invalid
from streamzy.services.message_writer import Sender
from streamzy.services.retention import Retention
from streamzy.storage import system_state
from streamzy.storage.models import Mention, Message, Reaction
from streamzy.wiring import Services
from tests.conftest import CLIENT, audit_rows, make_user
from tests.lifecycle.dumps import database_copy, holds

DAY = 86400


async def setup(services: Services) -> tuple[int, Sender, Sender, int]:
    admin = await make_user(services, "boss", admin=True)
    room = await services.rooms.create(admin.id, "general", "", False, CLIENT)
    alice = await make_user(services, "alice")
    bob = await make_user(services, "bob")
    await services.rooms.join(alice.id, room)
    await services.rooms.join(bob.id, room)
    return (room.id, Sender(alice.id, "alice", "Alice"), Sender(bob.id, "bob", "Bob"),
            admin.id)


async def test_purge_removes_old_messages_and_what_stays_behaves(
        services: Services, clock: ManualClock, tmp_path: Path) -> None:
    room_id, alice, bob, _ = await setup(services)
    room = await services.rooms.resolve(room_id)
    old = await services.messages.send(alice, room, "o1", "old news @bob", CLIENT)
    await services.changes.react(bob, room, old.id, "🎉", CLIENT)
    await services.reports.report(bob.user_id, room_id, old.id, "old report", CLIENT)
    await services.messages.send(alice, room, "o2", "older still @room", CLIENT)
    async with services.db.unit() as db:
        old_blobs = list((await db.execute(select(Message.ciphertext))).scalars())
    clock.advance(10 * DAY)
    room = await services.rooms.resolve(room_id)
    reply = await services.messages.send(bob, room, "n1", "fresh reply", CLIENT,
                                         reply_to=old.id)
    await services.messages.send(alice, room, "n2", "fresh @bob", CLIENT)

    retention = Retention(services.db, clock, services.audit, default_days=7)
    dry = await retention.purge(CLIENT, dry_run=True)
    assert dry.rooms == {room_id: 2}
    async with services.db.unit() as db:
        assert await db.scalar(select(func.count()).select_from(Message)) == 4
    report = await retention.purge(CLIENT)
    assert report.rooms == {room_id: 2}

    page, more = await services.history.page(room_id, None, 50, CLIENT)
    assert [(m.seq, m.text) for m in page] == [(3, "fresh reply"), (4, "fresh @bob")] and not more
    assert page[0].reply is None  # the quoted parent was purged: shown without its quote
    view = await services.history.for_join(room_id, 0, 50, CLIENT, since_change=0)
    assert [m.seq for m in view.messages] == [3, 4]
    missed, _ = await services.history.since(room_id, 1, 50, CLIENT)
    assert [m.seq for m in missed] == [3, 4]
    assert (await services.history.one(room_id, reply.id, CLIENT)) is not None
    # Unread: the purged ones are not counted; mentions: only the one that remains.
    views = {v.name: v for v in await services.rooms.visible(bob.user_id)}
    assert views["general"].public()["unread"] == 2
    assert views["general"].mentions == 1
    async with services.db.unit() as db:
        assert await db.scalar(select(func.count()).select_from(Reaction)) == 0
        assert await db.scalar(select(func.count()).select_from(Mention)) == 1
    state = await system_state.read_json(services.db, system_state.PURGE)
    assert state is not None and state["total"] == 2
    (row,) = await audit_rows(services, "messages_purged")
    assert '"total": 2' in row.detail
    copy = await database_copy(services.db.url, tmp_path)
    for blob in old_blobs:
        assert not holds(copy, blob)
    # A second round has nothing more to do.
    assert (await retention.purge(CLIENT)).total == 0


async def test_room_period_overrides_the_default_and_zero_keeps_for_ever(
        services: Services, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retention_module, "BATCH", 3)  # several bounded transactions
    room_id, alice, _, admin = await setup(services)
    room = await services.rooms.resolve(room_id)
    for n in range(8):
        await services.messages.send(alice, room, f"m{n}", f"message {n}", CLIENT)
    clock.advance(3 * DAY)
    room = await services.rooms.resolve(room_id)
    await services.messages.send(alice, room, "late", "recent", CLIENT)
    keep_all = Retention(services.db, clock, services.audit, default_days=0)
    assert (await keep_all.purge(CLIENT)).total == 0
    await keep_all.set_room_days(admin, room_id, 2, CLIENT)
    assert (await keep_all.purge(CLIENT)).rooms == {room_id: 8}
    (row,) = await audit_rows(services, "retention_changed")
    assert '"days": 2' in row.detail
    page, _ = await services.history.page(room_id, None, 50, CLIENT)
    assert [m.text for m in page] == ["recent"]


async def test_only_owners_and_admins_set_a_rooms_period(services: Services,
                                                         clock: ManualClock) -> None:
    room_id, alice, _, admin = await setup(services)
    retention = services.retention
    with pytest.raises(Forbidden):
        await retention.set_room_days(alice.user_id, room_id, 5, CLIENT)
    for bad in (0, -1, 36501):
        with pytest.raises(Invalid):
            await retention.set_room_days(admin, room_id, bad, CLIENT)
    await retention.set_room_days(admin, room_id, None, CLIENT)
