"""The key commands as an operator runs them (real subprocesses on the test database):
kill -9 in the middle of ``rotate-keys --data-keys`` and a re-run (a second run at the
same time refused), ``retire-key`` refused
then allowed, ``keys``, ``check-config``, and ``serve`` refusing to start when a master key
is missing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from streamzy.clock import ManualClock
from streamzy.services.message_writer import Sender
from streamzy.storage import system_state
from streamzy.storage.crypto import Keyring, MasterKeys, master_key_id
from streamzy.storage.models import Message, RoomKey
from streamzy.wiring import Services, build_services
from tests.conftest import CLIENT, free_port, make_settings, make_user
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
SECRET = "CLI-ROTATION-PLAINTEXT"


def env_for(services: Services, keys: list[str], tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("STREAMZY_")}
    settings = services.settings
    return {**base, "PYTHONPATH": str(ROOT),
            "STREAMZY_DATABASE_URL": settings.database_url,
            "STREAMZY_SECRET_KEY": settings.secret_key.get_secret_value(),
            "STREAMZY_PASSWORD_PEPPER": settings.password_pepper.get_secret_value(),
            "STREAMZY_MESSAGE_KEYS": ",".join(keys), "STREAMZY_BCRYPT_ROUNDS": "4",
            "STREAMZY_KEYRING_CHECK_SECONDS": "0.1",
            "STREAMZY_AUDIT_LOG_PATH": str(tmp_path / "cli-audit.log")}


def streamzy(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamzy.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
async def seeded(services: Services) -> AsyncIterator[tuple[Services, list[int]]]:
    """Two rooms, 3,000 messages in the first (group-committed), 5 in the second."""
    owner = await make_user(services, "olivia")
    speaker = Sender(owner.id, owner.username, owner.display_name)
    rooms = [await services.rooms.create(owner.id, name, "", False, CLIENT)
             for name in ("big", "small")]
    futures = [await services.messages.submit(speaker, rooms[0], f"b{n}", f"{SECRET} {n}",
                                              CLIENT) for n in range(3000)]
    futures += [await services.messages.submit(speaker, rooms[1], f"s{n}", f"{SECRET} s{n}",
                                               CLIENT) for n in range(5)]
    await asyncio.gather(*futures)
    yield services, [r.id for r in rooms]


async def all_texts(services: Services, keys: list[str]) -> list[str | None]:
    """Every message opened by a fresh keyring (nothing cached)."""
    keyring = Keyring(services.db, MasterKeys(keys), ManualClock())
    async with services.db.unit() as db:
        rows = (await db.execute(select(Message.room_id, Message.key_version,
                                        Message.ciphertext))).all()
    return [await keyring.open(r, v, bytes(c)) for r, v, c in rows]


async def test_kill_9_mid_rotation_then_a_rerun_finishes(
        seeded: tuple[Services, list[int]], tmp_path: Path) -> None:
    services, _ = seeded
    key = services.settings.message_keys[0].get_secret_value()
    env = env_for(services, [key], tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "streamzy.cli", "rotate-keys", "--data-keys",
                             "--batch-size", "10", "--duty", "1", "--max-rate", "100",
                             "--no-progress"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        async def moved() -> bool:
            found = await system_state.read_json(services.db, system_state.ROTATION)
            return found is not None and int(found.get("moved", 0)) >= 300
        await wait_until(moved, timeout=120)
        # A second run while the first works is refused: two would race for the same rows.
        second = await asyncio.to_thread(streamzy, env, tmp_path, "rotate-keys",
                                         "--data-keys", "--no-progress")
        assert second.returncode == 1
        assert "already running" in second.stderr
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    checkpoint = await system_state.read_json(services.db, system_state.ROTATION)
    assert checkpoint is not None and checkpoint["phase"] == "data"
    assert 300 <= checkpoint["moved"] < 3005
    texts = await all_texts(services, [key])
    assert len(texts) == 3005 and None not in texts  # every message readable mid-way
    # The killed run's claim went with it: the re-run below is not refused.
    again = streamzy(env, tmp_path, "rotate-keys", "--data-keys", "--batch-size", "500",
                     "--no-progress")
    assert again.returncode == 0, again.stderr
    assert "old version(s) destroyed" in again.stdout
    texts = await all_texts(services, [key])
    assert sorted(texts) == sorted([f"{SECRET} {n}" for n in range(3000)]
                                   + [f"{SECRET} s{n}" for n in range(5)])
    async with services.db.unit() as db:
        live = (await db.execute(select(RoomKey.room_id, RoomKey.version).where(
            RoomKey.wrapped_key.is_not(None)))).all()
        old = (await db.execute(select(func.count()).select_from(Message).where(
            Message.key_version == 1))).scalar_one()
    assert sorted(v for _, v in live) == [2, 2] and old == 0
    status = streamzy(env, tmp_path, "keys")
    assert "messages 0, reactions 0, reports 0" in status.stdout


async def test_retire_key_is_refused_while_needed_and_allowed_after(
        seeded: tuple[Services, list[int]], tmp_path: Path) -> None:
    services, _ = seeded
    old = services.settings.message_keys[0].get_secret_value()
    new = Fernet.generate_key().decode()
    env = env_for(services, [new, old], tmp_path)
    listed = streamzy(env, tmp_path, "keys")
    assert listed.returncode == 0, listed.stderr
    assert f"{master_key_id(new)}  wraps 0 room key(s)  (newest)" in listed.stdout
    assert f"{master_key_id(old)}  wraps 2 room key(s)" in listed.stdout
    assert old not in listed.stdout and new not in listed.stdout
    refused = streamzy(env, tmp_path, "retire-key", master_key_id(old))
    assert refused.returncode == 1 and "still wraps 2 room key(s)" in refused.stderr
    rotated = streamzy(env, tmp_path, "rotate-keys", "--no-progress")
    assert rotated.returncode == 0 and "re-wrapped" in rotated.stdout, rotated.stderr
    allowed = streamzy(env, tmp_path, "rotate-keys", "--retire", master_key_id(old))
    assert allowed.returncode == 0 and "safe to remove" in allowed.stdout
    texts = await all_texts(services, [new])  # the old key is really not needed any more
    assert None not in texts
    assert "[PASS] keys" in streamzy(env_for(services, [new], tmp_path), tmp_path,
                                     "check-config").stdout


async def test_a_missing_master_key_refuses_start_and_fails_check_config(
        seeded: tuple[Services, list[int]], tmp_path: Path) -> None:
    """The defect this fixes: with only a new master key the server started, said ready,
    and every old room read "[unreadable message]"."""
    services, _ = seeded
    env = env_for(services, [Fernet.generate_key().decode()], tmp_path)
    check = streamzy(env, tmp_path, "check-config")
    assert "[FAIL] keys: 2 room(s) have keys that no key in STREAMZY_MESSAGE_KEYS" in check.stdout
    strict = streamzy(env, tmp_path, "check-config", "--strict")
    assert strict.returncode == 1
    keys = streamzy(env, tmp_path, "check-keys")
    assert keys.returncode == 1 and "2 room(s)" in keys.stderr
    served = streamzy(env, tmp_path, "serve", "--port", str(free_port()))
    assert served.returncode != 0
    assert "refusing to start: 2 room(s) have keys" in served.stderr


async def test_no_plaintext_and_no_key_in_the_cli_output(
        services: Services, tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url)
    fresh = build_services(settings)
    try:
        owner = await make_user(fresh, "olivia")
        await fresh.rooms.create(owner.id, "r", "", False, CLIENT)
    finally:
        await fresh.close()
    key = settings.message_keys[0].get_secret_value()
    env = env_for(fresh, [key], tmp_path)
    result = streamzy(env, tmp_path, "rotate-keys", "--data-keys", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert key not in result.stdout + result.stderr
