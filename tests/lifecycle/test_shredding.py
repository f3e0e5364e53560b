"""Crypto-shredding without a server: a deleted room's key is destroyed with its content,
so ciphertexts captured before cannot be opened afterwards, even with the master keys, and
no copy of the database taken afterwards holds the key or the ciphertexts."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from streamzy.services.errors import Forbidden, Invalid, NotFound
from streamzy.services.events import RoomDeleted
from streamzy.services.message_state import Person
from streamzy.services.message_writer import Sender
from streamzy.services.rooms import RoomInfo
from streamzy.storage import system_state
from streamzy.storage.crypto import Keyring, MasterKeys
from streamzy.storage.models import (
    Membership,
    Mention,
    Message,
    Reaction,
    Report,
    Room,
    RoomBan,
    RoomKey,
)
from streamzy.wiring import Services
from tests.conftest import CLIENT, audit_rows, make_user
from tests.lifecycle.dumps import database_copy, holds

SECRET = "shred me: the vault combination is 31-41-59"


async def populated(services: Services, name: str = "doomed") -> tuple[RoomInfo, Sender, Sender]:
    admin = await make_user(services, f"boss{name}", admin=True)
    room = await services.rooms.create(admin.id, name, f"topic of {name}", False, CLIENT)
    alice = await make_user(services, f"alice{name}")
    bob = await make_user(services, f"bob{name}")
    a = Sender(alice.id, alice.username, alice.display_name)
    b = Sender(bob.id, bob.username, bob.display_name)
    await services.rooms.join(alice.id, room)
    await services.rooms.join(bob.id, room)
    first = await services.messages.send(a, room, "c1", f"{SECRET} @{bob.username}", CLIENT)
    await services.messages.send(b, room, "c2", "a reply", CLIENT, reply_to=first.id)
    await services.changes.react(b, room, first.id, "👍", CLIENT)
    await services.reports.report(bob.id, room.id, first.id, "please look", CLIENT)
    return room, a, b


async def captured(services: Services, room_id: int) -> tuple[list[bytes], list[bytes]]:
    async with services.db.unit() as db:
        texts = list((await db.execute(select(Message.ciphertext)
                                       .where(Message.room_id == room_id))).scalars())
        keys = list((await db.execute(select(RoomKey.wrapped_key)
                                      .where(RoomKey.room_id == room_id))).scalars())
    return texts, [k for k in keys if k]


async def count(services: Services, model: type, *where: object) -> int:
    async with services.db.unit() as db:
        return int(await db.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def test_deleting_a_room_destroys_its_key_and_content(services: Services,
                                                          tmp_path: Path) -> None:
    room, _alice, _ = await populated(services)
    other, other_alice, _ = await populated(services, "survivor")
    await services.messages.send(other_alice, other, "o1", "still here", CLIENT)
    texts, wrapped = await captured(services, room.id)
    assert texts and wrapped
    heard: list[RoomDeleted] = []

    async def hear(event: RoomDeleted) -> None:
        heard.append(event)

    services.events.subscribe(RoomDeleted, hear)
    admin = (await audit_rows(services, "room_created"))[0].user_id
    done = await services.shredder.delete_room(admin, room.id, CLIENT, confirm="doomed")

    assert done.messages == 2 and len(done.members) == 3
    for model, where in ((Message, Message.room_id == room.id),
                         (Membership, Membership.room_id == room.id),
                         (Mention, Mention.room_id == room.id),
                         (Report, Report.room_id == room.id),
                         (RoomBan, RoomBan.room_id == room.id)):
        assert await count(services, model, where) == 0, model
    assert await count(services, Reaction) == 1  # the other room's only
    async with services.db.unit() as db:
        keys = list((await db.execute(select(RoomKey).where(RoomKey.room_id == room.id)))
                    .scalars())
        tomb = await db.get(Room, room.id)
    assert keys and all(k.wrapped_key is None and k.destroyed_at is not None for k in keys)
    assert tomb is not None and tomb.kind == "deleted" and tomb.name == f"~deleted-{room.id}"
    assert tomb.topic == "" and await services.rooms.get(room.id) is None
    assert await services.rooms.by_name("doomed") is None
    # The name is free again, and the new room is another room with another key.
    again = await services.rooms.create(admin, "doomed", "", False, CLIENT)  # type: ignore[arg-type]
    assert again.id != room.id

    # Captured ciphertexts stay shut, even to a fresh process holding the master keys.
    keys_setting = [k.get_secret_value() for k in services.settings.message_keys]
    fresh = Keyring(services.db, MasterKeys(keys_setting), services.clock)
    for blob in texts:
        assert await fresh.open(room.id, 1, blob) is None
        assert await services.keyring.open(room.id, 1, blob) is None
    # The other room is untouched.
    page, _ = await services.history.page(other.id, None, 10, CLIENT)
    assert [m.text for m in page][-1] == "still here"

    assert heard and heard[0].room_id == room.id and set(heard[0].member_ids) == set(done.members)
    epoch = await system_state.read(services.db, system_state.KEYRING_EPOCH)
    assert epoch is not None and int(epoch[0]) >= 1
    (row,) = await audit_rows(services, "room_deleted")
    assert row.user_id == admin and '"messages": 2' in row.detail

    copy = await database_copy(services.db.url, tmp_path)
    for secret in [*texts, *wrapped]:
        assert not holds(copy, secret)
    assert SECRET.encode() not in copy and b"topic of doomed" not in copy


async def test_only_active_admins_delete_rooms_and_the_name_must_match(
        services: Services) -> None:
    room, alice, _ = await populated(services)
    with pytest.raises(Forbidden):
        await services.shredder.delete_room(alice.user_id, room.id, CLIENT)
    admin = (await audit_rows(services, "room_created"))[0].user_id
    with pytest.raises(Invalid):
        await services.shredder.delete_room(admin, room.id, CLIENT, confirm="not-it")
    assert await services.rooms.get(room.id) is not None
    dm = await services.direct.open(_person(alice), ["bobdoomed"], CLIENT)
    with pytest.raises(NotFound):  # a DM is never deleted through the admin path
        await services.shredder.delete_room(admin, dm.room.id, CLIENT)


def _person(sender: Sender) -> Person:
    return Person(sender.user_id, sender.username, sender.display_name)


async def test_a_member_deletes_a_dm_for_everyone(services: Services, tmp_path: Path) -> None:
    _, alice, bob = await populated(services)
    dm = await services.direct.open(_person(alice), [bob.username], CLIENT)
    await services.messages.send(alice, dm.room, "d1", SECRET, CLIENT)
    texts, wrapped = await captured(services, dm.room.id)
    outsider = await make_user(services, "outsider")
    with pytest.raises(NotFound):
        await services.shredder.delete_direct(outsider.id, dm.room.id, CLIENT)
    await services.shredder.delete_direct(bob.user_id, dm.room.id, CLIENT)
    assert await services.rooms.get(dm.room.id) is None
    assert await count(services, Message, Message.room_id == dm.room.id) == 0
    (row,) = await audit_rows(services, "dm_deleted")
    assert row.user_id == bob.user_id
    # Opening it again starts a new conversation with a new key.
    again = await services.direct.open(_person(alice), [bob.username], CLIENT)
    assert again.created and again.room.id != dm.room.id
    copy = await database_copy(services.db.url, tmp_path)
    for secret in [*texts, *wrapped]:
        assert not holds(copy, secret)


async def test_a_dm_its_last_member_left_is_shredded(services: Services) -> None:
    _, alice, bob = await populated(services)
    dm = await services.direct.open(_person(alice), [bob.username], CLIENT)
    await services.messages.send(alice, dm.room, "d1", SECRET, CLIENT)
    await services.room_roles.leave(alice.user_id, dm.room.id, CLIENT)
    assert await services.rooms.get(dm.room.id) is not None  # bob is still in it
    await services.rooms.leave(bob.user_id, dm.room.id, CLIENT)
    assert await services.rooms.get(dm.room.id) is None
    (row,) = await audit_rows(services, "dm_deleted")
    assert '"by": "last_member_left"' in row.detail
    async with services.db.unit() as db:
        keys = list((await db.execute(select(RoomKey.wrapped_key)
                                      .where(RoomKey.room_id == dm.room.id))).scalars())
    assert keys == [None]
