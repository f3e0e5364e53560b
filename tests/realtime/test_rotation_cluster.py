"""Data-key rotation while two server processes (Redis) serve the room: people keep
talking on both during ``streamzy rotate-keys --data-keys`` (a real process), every ack'd
message is stored once and opens afterwards, both processes go on writing after the old
key version was destroyed, and a reader joining on either process reads everything."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from streamzy.clock import ManualClock
from streamzy.guards.context import SYSTEM
from streamzy.storage import system_state
from streamzy.storage.crypto import Keyring, MasterKeys
from streamzy.storage.models import Message, RoomKey
from tests.faults.processes import user_session
from tests.realtime.helpers import connected
from tests.realtime.test_multiprocess import cluster  # noqa: F401 - the two-process fixture
from tests.test_cli_keys import env_for
from tests.waiting import wait_until

pytestmark = pytest.mark.slow
ROUNDS = 12  # per person, well inside the 30 a minute message budget


async def test_rotation_with_two_processes_loses_nothing(
        cluster: dict, tmp_path: Path) -> None:  # noqa: F811 - the fixture imported above
    services = cluster["services"]
    url_a, url_b = cluster["urls"]
    cookies = {name: await user_session(services, name) for name in ("olivia", "alice", "bob")}
    owner = await services.accounts.by_username("olivia")
    room = (await services.rooms.create(owner.id, "general", "", False, SYSTEM)).id
    for name in ("alice", "bob"):
        await services.rooms.invite(owner.id, room, name, SYSTEM)
    alice = await connected(url_a, cookie=cookies["alice"], rooms=[room])
    bob = await connected(url_b, cookie=cookies["bob"], rooms=[room])
    acked: dict[int, str] = {}
    key = services.settings.message_keys[0].get_secret_value()
    try:
        for n in range(4):  # both processes have the room's current version cached
            for who, client in (("alice", alice), ("bob", bob)):
                ack = await client.send(room, f"{who} before {n}")
                assert ack["ok"], ack
                acked[ack["id"]] = f"{who} before {n}"
        rotation = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "streamzy.cli", "rotate-keys", "--data-keys",
            "--batch-size", "2", "--no-progress", cwd=tmp_path,
            env=env_for(services, [key], tmp_path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)

        async def switched() -> bool:  # the room is on its new version; the old one lives on
            found = await system_state.read_json(services.db, system_state.ROTATION)
            return found is not None and found.get("phase") == "data"
        await wait_until(switched, timeout=60)
        for n in range(ROUNDS - 4):  # both processes may still seal with the old version
            for who, client in (("alice", alice), ("bob", bob)):
                ack = await client.send(room, f"{who} during {n}")
                assert ack["ok"], ack
                acked[ack["id"]] = f"{who} during {n}"
        out, err = await asyncio.wait_for(rotation.communicate(), timeout=240)
        assert rotation.returncode == 0, err.decode()
        assert "1 old version(s) destroyed" in out.decode()
        for who, client in (("alice", alice), ("bob", bob)):  # after the old key is gone
            ack = await client.send(room, f"{who} after")
            assert ack["ok"], ack
            acked[ack["id"]] = f"{who} after"

        async with services.db.unit() as db:
            rows = (await db.execute(select(Message.id, Message.key_version,
                                            Message.ciphertext)
                                     .where(Message.room_id == room))).all()
            keys = (await db.execute(select(RoomKey.version, RoomKey.wrapped_key)
                                     .where(RoomKey.room_id == room))).all()
        assert {version for version, wrapped in keys if wrapped is not None} == {2}
        fresh = Keyring(services.db, MasterKeys([key]), ManualClock())
        stored = {row_id: await fresh.open(room, version, bytes(ct))
                  for row_id, version, ct in rows}
        assert stored == acked  # every ack'd message stored once, each one opens
        for url in (url_a, url_b):
            reader = await connected(url, cookie=cookies["olivia"])
            try:
                joined = await reader.call("join", {"room": room})
                assert joined["ok"], joined
                assert sorted(m["text"] for m in joined["messages"]) == sorted(acked.values())
            finally:
                await reader.close()
    finally:
        for client in (alice, bob):
            await client.close()
