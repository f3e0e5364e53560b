"""Data-key rotation while the server serves: socket clients keep sending and a reader
keeps reading history during ``rotate-keys --data-keys`` (run from separate services on
the same database, as the CLI is another process). Every acknowledged message is stored
and readable afterwards, and no read ever sees an unreadable message. Two processes on one
database follow the keyring epoch; /readyz reports unusable keys."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, update

from streamzy.clock import ManualClock
from streamzy.services.events import KeysChanged
from streamzy.services.key_health import RECHECK_SECONDS
from streamzy.services.key_rotation import KeyRotation, Throttle
from streamzy.services.message_writer import Sender
from streamzy.storage.crypto import Keyring, MasterKeys
from streamzy.storage.models import Message, RoomKey
from streamzy.wiring import Services, build_services
from tests.conftest import CLIENT, LiveServer, make_settings, make_user
from tests.realtime.helpers import connected, make_room

SENDERS = 3


@pytest.fixture
def server_settings() -> dict[str, Any]:
    return {"keyring_check_seconds": 0.1, "rate_messages": "10000/m",
            "rate_socket_events": "10000/m"}


async def test_rotation_under_chat_load_loses_nothing_and_never_reads_unreadable(
        server: LiveServer, tmp_path: Path) -> None:
    services = server.services
    room = await make_room(server, "busy")
    clients = [await connected(server, f"talker{n}") for n in range(SENDERS)]
    for client in clients:
        assert (await client.call("join", {"room": room}))["ok"]
    info = await services.rooms.get(room)
    assert info is not None
    owner = await make_user(services, "seeder")
    seed = Sender(owner.id, owner.username, owner.display_name)
    await asyncio.gather(*[await services.messages.submit(seed, info, f"seed{n}", f"seed {n}",
                                                          CLIENT) for n in range(600)])
    acked: dict[str, str] = {}
    unreadable: list[Any] = []
    reads = 0
    stop = asyncio.Event()

    async def talk(index: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            cid = f"c{index}-{n}"
            answer = await clients[index].send(room, f"live {index} {n}", cid)
            if answer.get("ok"):
                acked[cid] = f"live {index} {n}"

    async def read() -> None:
        nonlocal reads
        reader = clients[0]
        while not stop.is_set():
            page = await reader.call("history", {"room": room, "limit": 100})
            for message in page.get("messages", []):
                if message.get("text") is None or "unreadable" in str(message.get("text")):
                    unreadable.append(message)
            reads += 1

    # The operator's process: its own keyring and caches, real time, a small batch.
    settings = services.settings
    cli = build_services(make_settings(tmp_path, settings.database_url,
                                       message_keys=[k.get_secret_value()
                                                     for k in settings.message_keys]))
    load = [asyncio.create_task(talk(i)) for i in range(SENDERS)]
    load.append(asyncio.create_task(read()))
    try:
        rotation = KeyRotation(cli.db, cli.clock, cli.keyring, cli.audit, grace_seconds=1.2)
        outcome = await rotation.run(Throttle(batch_size=25, duty=0.5))
    finally:
        stop.set()
        results = await asyncio.gather(*load, return_exceptions=True)
        await cli.close()
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert outcome.destroyed == 1 and outcome.kept == 0
    assert reads > 3 and len(acked) > 20
    assert unreadable == []
    # Every acknowledged message is stored once, on the new version, and opens.
    fresh = Keyring(services.db, MasterKeys([k.get_secret_value()
                                             for k in settings.message_keys]), ManualClock())
    async with services.db.unit() as db:
        rows = (await db.execute(select(Message.client_msg_id, Message.key_version,
                                        Message.ciphertext).where(Message.room_id == room)
                                 )).all()
        live_keys = (await db.execute(select(RoomKey.version).where(
            RoomKey.room_id == room, RoomKey.wrapped_key.is_not(None)))).scalars().all()
    stored = {cid: (version, await fresh.open(room, version, bytes(sealed)))
              for cid, version, sealed in rows}
    assert list(live_keys) == [2]
    assert {version for version, _ in stored.values()} == {2}
    for cid, text in acked.items():
        assert stored[cid][1] == text
    # And the server carries on: a new message after the rotation reads back.
    assert (await clients[1].send(room, "after the rotation", "after-1"))["ok"]
    history = await clients[2].call("history", {"room": room, "limit": 5})
    assert history["messages"][-1]["text"] == "after the rotation"
    for client in clients:
        await client.close()


async def test_two_processes_follow_the_epoch_and_write_on_the_new_version(
        tmp_path: Path, database_url: str, clock: ManualClock) -> None:
    key = Fernet.generate_key().decode()
    first = build_services(make_settings(tmp_path, database_url, message_keys=[key]), clock)
    second = build_services(make_settings(tmp_path, database_url, message_keys=[key]), clock)
    try:
        owner = await make_user(first, "olivia")
        speaker = Sender(owner.id, owner.username, owner.display_name)
        room = await first.rooms.create(owner.id, "shared", "", False, CLIENT)
        for watch in (first.key_watch, second.key_watch):
            await watch.check_once()
        await first.messages.send(speaker, room, "a1", "before", CLIENT)
        assert (await second.history.page(room.id, None, 10, CLIENT))[0][0].text == "before"
        heard: list[KeysChanged] = []

        async def hear(event: KeysChanged) -> None:
            heard.append(event)

        second.events.subscribe(KeysChanged, hear)

        async def sleep(seconds: float) -> None:
            clock.advance(seconds)

        outcome = await KeyRotation(first.db, clock, first.keyring, first.audit,
                                    grace_seconds=5, sleep=sleep).run(Throttle())
        assert outcome.destroyed == 1
        # Second still holds version 1 in memory, and the room as it was (key_version 1).
        assert (room.id, 1) in second.keyring._keys
        await second.key_watch.check_once()
        assert len(heard) == 1 and (room.id, 1) not in second.keyring._keys
        # Both write with the stale room version they cached: re-sealed on version 2.
        await second.messages.send(speaker, room, "b1", "from second", CLIENT)
        await first.messages.send(speaker, room, "a2", "from first", CLIENT)
        for services in (first, second):
            texts = [m.text for m in (await services.history.page(room.id, None, 10,
                                                                  CLIENT))[0]]
            assert texts == ["before", "from second", "from first"]
        async with first.db.unit() as db:
            versions = set((await db.execute(select(Message.key_version))).scalars())
        assert versions == {2}
        assert (await second.readiness())[1]["keys"] == "usable"
    finally:
        await first.close()
        await second.close()


async def test_readiness_says_not_ready_when_a_room_key_does_not_unwrap(
        services: Services, tmp_path: Path, database_url: str, clock: ManualClock) -> None:
    owner = await make_user(services, "olivia")
    await services.rooms.create(owner.id, "one", "", False, CLIENT)
    await services.rooms.create(owner.id, "two", "", False, CLIENT)
    await services.key_watch.check_once()
    ready, report = await services.readiness()
    assert ready and report["keys"] == "usable"
    stranger = build_services(make_settings(tmp_path, database_url,
                                            message_keys=[Fernet.generate_key().decode()]),
                              clock)
    try:
        await stranger.key_watch.check_once()
        ready, report = await stranger.readiness()
        assert not ready and report["keys"] == "2 room(s) unusable"
    finally:
        with contextlib.suppress(Exception):
            await stranger.close()


async def test_a_key_spoiled_later_is_found_by_the_periodic_full_check(
        services: Services, clock: ManualClock) -> None:
    """Between epoch changes the full unwrap check runs once a minute, not on every
    2-second round: a room key row damaged behind the server's back turns /readyz red
    within that minute."""
    owner = await make_user(services, "olivia")
    room = await services.rooms.create(owner.id, "one", "", False, CLIENT)
    await services.key_watch.check_once()
    assert (await services.readiness())[1]["keys"] == "usable"
    async with services.db.unit() as db:
        await db.execute(update(RoomKey).where(RoomKey.room_id == room.id)
                         .values(wrapped_key=b"not a wrapped key"))
    await services.key_watch.check_once()  # the next 2-second round does not read them all
    assert (await services.readiness())[1]["keys"] == "usable"
    clock.advance(RECHECK_SECONDS)
    await services.key_watch.check_once()
    ready, report = await services.readiness()
    assert not ready and report["keys"] == "1 room(s) unusable"
