"""Key rotation without a server: master-key re-wrap and retirement, data-key rotation with
edits, reactions and reports, writers holding a stale key version, and the key check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, text

from streamzy.clock import ManualClock
from streamzy.services.errors import Conflict, Invalid
from streamzy.services.key_inventory import KeyInventory
from streamzy.services.key_rotation import KeyRotation, Throttle
from streamzy.services.message_writer import Sender
from streamzy.services.rooms import RoomInfo
from streamzy.storage import system_state
from streamzy.storage.crypto import master_key_id
from streamzy.storage.models import Message, Reaction, Report, RoomKey
from streamzy.wiring import Services, build_services
from tests.conftest import BACKEND, CLIENT, make_settings, make_user

SECRET = "PLAINTEXT-ROTATION-MARKER"


async def chat(services: Services, count: int = 30) -> tuple[RoomInfo, Sender, Sender, list[int]]:
    owner = await make_user(services, "olivia")
    alice = await make_user(services, "alice")
    room = await services.rooms.create(owner.id, "general", "", False, CLIENT)
    await services.rooms.invite(owner.id, room.id, "alice", CLIENT)
    speaker = Sender(owner.id, owner.username, owner.display_name)
    other = Sender(alice.id, alice.username, alice.display_name)
    ids = []
    for n in range(count):
        sent = await services.messages.send(speaker, room, f"m{n}", f"{SECRET} {n}", CLIENT)
        ids.append(sent.id)
    return room, speaker, other, ids


async def texts(services: Services, room_id: int) -> dict[int, str | None]:
    messages, _ = await services.history.page(room_id, None, 500, CLIENT)
    return {m.id: m.text for m in messages}


def rotation(services: Services, clock: ManualClock, **kw: Any) -> KeyRotation:
    async def sleep(seconds: float) -> None:
        clock.advance(seconds)

    return KeyRotation(services.db, clock, services.keyring, services.audit,
                       grace_seconds=5, sleep=kw.pop("sleep", sleep))


async def versions(services: Services, model: Any) -> set[int]:
    async with services.db.unit() as db:
        return set((await db.execute(select(model.key_version))).scalars())


async def test_data_keys_rotate_with_edits_reactions_reports_and_old_key_is_destroyed(
        services: Services, clock: ManualClock, tmp_path: Path) -> None:
    room, speaker, alice, ids = await chat(services)
    await services.changes.edit(speaker, room, ids[3], f"{SECRET} edited", CLIENT)
    await services.changes.delete(speaker, room, ids[4], CLIENT)
    await services.changes.react(alice, room, ids[5], "\U0001f44d", CLIENT)
    await services.changes.react(speaker, room, ids[5], "\U0001f44d", CLIENT)
    await services.reports.report(alice.user_id, room.id, ids[6], f"{SECRET} reason", CLIENT)
    before = await texts(services, room.id)
    epoch = await system_state.read(services.db, system_state.KEYRING_EPOCH)

    outcome = await rotation(services, clock).run(Throttle(batch_size=7))

    assert (outcome.switched, outcome.destroyed, outcome.kept) == (1, 1, 0)
    assert outcome.moved == 30 + 1  # every message (the deleted one too) and the report
    services.keyring.forget()
    assert await texts(services, room.id) == before
    assert before[ids[3]] == f"{SECRET} edited" and not before[ids[4]]
    assert {await versions(services, m) == {2} for m in (Message, Reaction, Report)} == {True}
    async with services.db.unit() as db:
        keys = {k.version: k for k in (await db.execute(select(RoomKey))).scalars()}
        report = (await db.execute(select(Report))).scalar_one()
    assert keys[1].wrapped_key is None and keys[1].destroyed_at is not None
    assert keys[2].wrapped_key is not None
    assert await services.keyring.open(room.id, 2, report.reason_ciphertext) == f"{SECRET} reason"
    # The reaction digest was recomputed: the same emoji toggles the existing one off.
    fresh = await services.rooms.get(room.id)
    assert fresh is not None and fresh.key_version == 2
    undone = await services.changes.react(alice, fresh, ids[5], "\U0001f44d", CLIENT)
    assert undone.added is False
    checkpoint = await rotation(services, clock).checkpoint()
    assert checkpoint is not None and checkpoint["phase"] == "done"
    after = await system_state.read(services.db, system_state.KEYRING_EPOCH)
    assert after is not None and (epoch is None or int(after[0]) > int(epoch[0]))
    if BACKEND == "sqlite":
        for path in tmp_path.glob("streamzy.db*"):
            assert SECRET.encode() not in path.read_bytes(), path.name


async def test_writers_during_a_rotation_never_land_on_a_retired_version(
        services: Services, clock: ManualClock) -> None:
    """Chat between every batch: sends with a stale (cached) room version, edits of rows a
    batch already read, reactions and reports. Everything ends on the new version, and
    every text reads back."""
    room, speaker, alice, ids = await chat(services, 40)
    stale_room = room  # what a process that has not noticed the switch still holds
    expected: dict[int, str] = {}
    turn = 0

    async def chat_between_batches(seconds: float) -> None:
        nonlocal turn
        turn += 1
        sent = await services.messages.send(speaker, stale_room, f"during-{turn}",
                                           f"during {turn}", CLIENT)
        expected[sent.id] = f"during {turn}"
        target = ids[(turn * 7) % len(ids)]
        current = await services.rooms.get(room.id)
        assert current is not None
        await services.changes.edit(speaker, current, target, f"edit {turn}", CLIENT)
        expected[target] = f"edit {turn}"
        await services.changes.react(alice, current, ids[turn % len(ids)], "\u2764\ufe0f",
                                     CLIENT)
        await services.reports.report(alice.user_id, room.id, ids[turn], f"r{turn}", CLIENT)
        clock.advance(seconds)

    worker = rotation(services, clock, sleep=chat_between_batches)
    outcome = await worker.run(Throttle(batch_size=5, duty=0.5))
    assert turn >= 8 and outcome.kept == 0 and outcome.destroyed == 1
    services.keyring.forget()
    now = await texts(services, room.id)
    assert None not in {now[i] for i in ids}
    for message_id, wanted in expected.items():
        assert now[message_id] == wanted
    assert {await versions(services, m) == {2} for m in (Message, Reaction, Report)} == {True}


async def test_a_resumed_rotation_continues_from_its_checkpoint(
        services: Services, clock: ManualClock) -> None:
    room, _, _, _ = await chat(services, 25)
    calls = 0

    async def killed(_seconds: float) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt  # the process dies between two batches

    with pytest.raises(KeyboardInterrupt):
        await rotation(services, clock, sleep=killed).run(Throttle(batch_size=5, duty=0.5))
    checkpoint = await rotation(services, clock).checkpoint()
    assert checkpoint is not None and checkpoint["phase"] == "data"
    assert checkpoint["after_seq"] == 10 and checkpoint["moved"] == 10
    services.keyring.forget()
    assert None not in (await texts(services, room.id)).values()  # readable mid-way
    outcome = await rotation(services, clock).run(Throttle(batch_size=5))
    assert outcome.switched == 0 and outcome.moved == 15 and outcome.destroyed == 1
    services.keyring.forget()
    assert None not in (await texts(services, room.id)).values()


async def test_master_key_rewrap_then_retire(services: Services, clock: ManualClock,
                                             tmp_path: Path, database_url: str) -> None:
    room, _, _, _ = await chat(services, 5)
    old = services.settings.message_keys[0].get_secret_value()
    new = Fernet.generate_key().decode()
    both = build_services(make_settings(tmp_path, database_url, message_keys=[new, old]), clock)
    only_new = build_services(make_settings(tmp_path, database_url, message_keys=[new]), clock)
    try:
        inventory = KeyInventory(both.db, clock, both.keyring, both.audit)
        status = await inventory.status()
        assert [(m.key_id, m.room_keys) for m in status.masters] == [
            (master_key_id(new), 0), (master_key_id(old), 1)]
        with pytest.raises(Conflict, match="still wraps 1 room key"):
            await inventory.retire(master_key_id(old))
        with pytest.raises(Invalid):
            await inventory.retire(master_key_id(new))
        assert await only_new.keyring.unusable_rooms() == 1
        done = await inventory.rewrap()
        assert (done.rewrapped, done.unwrappable) == (1, 0)
        assert await inventory.retire(master_key_id(old)) == 0
        assert await only_new.keyring.unusable_rooms() == 0
        assert None not in (await texts(only_new, room.id)).values()
        async with both.db.unit() as db:
            ids = set((await db.execute(select(RoomKey.master_key_id))).scalars())
        assert ids == {master_key_id(new)}
    finally:
        await both.close()
        await only_new.close()


async def test_rows_without_a_key_id_are_attributed_and_rewrapped(
        services: Services, clock: ManualClock) -> None:
    await chat(services, 1)
    async with services.db.unit() as db:
        await db.execute(text("UPDATE room_keys SET master_key_id = NULL"))
    inventory = KeyInventory(services.db, clock, services.keyring, services.audit)
    key_id = services.keyring.master.newest_id
    assert (await inventory.wrapped_by()) == {key_id: 1}
    assert (await inventory.rewrap()).rewrapped == 1
    async with services.db.unit() as db:
        assert set((await db.execute(select(RoomKey.master_key_id))).scalars()) == {key_id}


def test_a_key_id_is_a_short_fingerprint_that_does_not_reveal_the_key() -> None:
    key = Fernet.generate_key().decode()
    key_id = master_key_id(key)
    assert len(key_id) == 16 and int(key_id, 16) >= 0
    assert key_id not in key and key_id == master_key_id(key.encode())
    assert master_key_id(Fernet.generate_key()) != key_id
