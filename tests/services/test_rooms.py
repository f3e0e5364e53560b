"""Rooms without a server: create, public join and leave, private rooms by invitation."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from streamzy.services.errors import Conflict, Forbidden, Invalid, NotFound
from streamzy.services.message_writer import Sender
from streamzy.storage.models import RoomKey
from streamzy.wiring import Services
from tests.conftest import CLIENT, audit_rows, make_user


async def test_create_names_the_room_makes_its_key_and_its_creator_a_member(
        services: Services) -> None:
    admin = await make_user(services, "boss", admin=True)
    room = await services.rooms.create(admin.id, " General ", "Everything", False, CLIENT)
    assert (room.name, room.topic, room.is_private, room.last_seq) == ("general", "Everything",
                                                                      False, 0)
    assert await services.rooms.is_member(admin.id, room.id)
    async with services.db.unit() as db:
        keys = list((await db.execute(select(RoomKey).where(RoomKey.room_id == room.id)))
                    .scalars())
    assert [k.version for k in keys] == [1] and keys[0].wrapped_key
    assert (await services.rooms.resolve("general")).id == room.id
    assert (await services.rooms.resolve(room.id)).name == "general"
    assert len(await audit_rows(services, "room_created")) == 1


async def test_room_names_are_checked_and_unique(services: Services) -> None:
    admin = await make_user(services, "boss", admin=True)
    await services.rooms.create(admin.id, "general", "", False, CLIENT)
    with pytest.raises(Conflict):
        await services.rooms.create(admin.id, "GENERAL", "", True, CLIENT)
    for bad in ("", "has space", "-dash-first", "x" * 65, "caf\u00e9", "../etc"):
        with pytest.raises(Invalid):
            await services.rooms.create(admin.id, bad, "", False, CLIENT)
    with pytest.raises(NotFound):
        await services.rooms.resolve("nowhere")


async def test_anyone_joins_and_leaves_a_public_room(services: Services) -> None:
    admin = await make_user(services, "boss", admin=True)
    alice = await make_user(services, "alice")
    room = await services.rooms.create(admin.id, "general", "", False, CLIENT)
    [seen] = await services.rooms.visible(alice.id)
    assert seen.name == "general" and not seen.member
    await services.rooms.join(alice.id, room)
    await services.rooms.join(alice.id, room)  # again: same outcome
    assert await services.rooms.is_member(alice.id, room.id)
    assert (await services.rooms.visible(alice.id))[0].member
    await services.rooms.leave(alice.id, room.id)
    assert not await services.rooms.is_member(alice.id, room.id)
    await services.rooms.leave(alice.id, room.id)  # leaving twice is harmless


async def test_a_private_room_is_invisible_and_closed_until_an_invitation(
        services: Services) -> None:
    admin = await make_user(services, "boss", admin=True)
    alice = await make_user(services, "alice")
    await services.rooms.create(admin.id, "general", "", False, CLIENT)
    staff = await services.rooms.create(admin.id, "staff", "", True, CLIENT)
    assert [r.name for r in await services.rooms.visible(alice.id)] == ["general"]
    with pytest.raises(Forbidden) as refused:
        await services.rooms.join(alice.id, staff)
    assert refused.value.code == "not_a_member"
    assert not await services.rooms.is_member(alice.id, staff.id)

    invited = await services.rooms.invite(admin.id, staff.id, "Alice", CLIENT)
    assert invited.id == alice.id
    await services.rooms.join(alice.id, staff)
    assert [(r.name, r.member) for r in await services.rooms.visible(alice.id)] == [
        ("general", False), ("staff", True)]
    await services.rooms.leave(alice.id, staff.id)
    with pytest.raises(Forbidden):  # leaving gives the invitation back
        await services.rooms.join(alice.id, staff)


async def test_invitations_need_an_active_user_and_a_room(services: Services) -> None:
    admin = await make_user(services, "boss", admin=True)
    gone = await make_user(services, "gone")
    staff = await services.rooms.create(admin.id, "staff", "", True, CLIENT)
    await services.accounts.set_active(admin.id, gone.id, False, CLIENT)
    for name in ("nobody", "gone"):
        with pytest.raises(NotFound):
            await services.rooms.invite(admin.id, staff.id, name, CLIENT)
    with pytest.raises(NotFound):
        await services.rooms.invite(admin.id, 999_999, "boss", CLIENT)


async def test_members_only_mode_refuses_public_rooms_too(services: Services) -> None:
    admin = await make_user(services, "boss", admin=True)
    alice = await make_user(services, "alice")
    room = await services.rooms.create(admin.id, "general", "", False, CLIENT)
    with pytest.raises(Forbidden):
        await services.rooms.join(alice.id, room, may_join_public=False)


async def test_read_markers_only_move_forward(services: Services) -> None:
    admin = await make_user(services, "boss", admin=True)
    room = await services.rooms.create(admin.id, "general", "", False, CLIENT)
    sender = Sender(admin.id, admin.username, admin.display_name)
    for k in range(6):
        await services.messages.send(sender, room, f"c{k}", f"message {k}", CLIENT)
    await services.rooms.mark_read(admin.id, room.id, 5)
    await services.rooms.mark_read(admin.id, room.id, 3)  # a stale tab cannot move it back
    [view] = await services.rooms.visible(admin.id)
    assert view.last_read_seq == 5
    await services.rooms.mark_read(admin.id, room.id, 10**15)  # past the end: the last one
    [view] = await services.rooms.visible(admin.id)
    assert view.last_read_seq == 6
