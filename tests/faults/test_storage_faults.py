"""The database hangs, the disk fills, the start is refused: clear answers, bounded waits,
recovery without a restart, and a non-zero exit a supervisor can see."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from streamzy.guards.context import SYSTEM
from streamzy.storage.migrate import upgrade_async
from tests.conftest import REQUIRE_SERVICES
from tests.faults.processes import (
    ROOT,
    PrivatePostgres,
    StreamzyProcess,
    admin_services,
    secrets_env,
    user_session,
)
from tests.realtime.helpers import ChatClient


async def seeded(env: dict[str, str]) -> tuple[int, str]:
    services = admin_services(env)
    admin, _ = await services.accounts.create_user("boss", "Boss", "", is_admin=True)
    room = (await services.rooms.create(admin.id, "general", "", False, SYSTEM)).id
    cookie = await user_session(services, "ann")
    await services.close()
    return room, cookie


async def test_hung_postgres_answers_unavailable_within_seconds_and_recovers(
        tmp_path: Path, private_pg: PrivatePostgres) -> None:
    await upgrade_async(private_pg.url)
    env = {**secrets_env(), "STREAMZY_DATABASE_URL": private_pg.url,
           "STREAMZY_AUDIT_LOG_PATH": str(tmp_path / "audit.log")}
    room, cookie = await seeded(env)
    server = StreamzyProcess(tmp_path, env)
    await server.start()
    client = ChatClient(server.url, cookie=cookie)
    try:
        await client.connect()
        await client.call("join", {"room": room})
        assert (await client.send(room, "before", "m-1"))["ok"]
        private_pg.pause()
        # Each send is answered (an error, never a false ack) well inside the 5 s wait.
        during = [await client.call("message", {"room": room, "client_msg_id": f"m-d{k}",
                                                "text": f"during {k}"}, timeout=5)
                  for k in range(2)]
        assert all(not ack["ok"] for ack in during), during
        assert {ack["code"] for ack in during} <= {"unavailable", "store_failed"}
        async with httpx.AsyncClient(base_url=server.url, timeout=1.5) as http:
            ready = await http.get("/readyz")  # answers within 1.5 s, says down
            assert ready.status_code == 503 and ready.json()["database"] == "down"
        private_pg.resume()
        for _ in range(100):  # no restart: the pool recovers by itself
            ack = await client.call("message", {"room": room, "client_msg_id": "m-2",
                                                "text": "after"}, timeout=5)
            if ack["ok"]:
                break
            await asyncio.sleep(0.2)
        assert ack["ok"], ack
        history = await client.call("history", {"room": room})
        stored = [m["client_msg_id"] for m in history["messages"]]
        assert stored == ["m-1", "m-2"]  # nothing acked that was not stored, nothing else
    finally:
        private_pg.resume()
        await client.close()
        server.stop()


def small_disk(tmp_path: Path, size: str) -> Path:
    """A tmpfs of ``size`` (root only); skipped elsewhere unless CI requires it."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        message = "needs root to mount a small tmpfs: " + done.stderr.decode()[:200]
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    return mount


async def test_a_full_disk_gives_503s_and_error_acks_and_recovers(
        tmp_path: Path, template_db: Path) -> None:
    disk = small_disk(tmp_path, "4m")
    try:
        shutil.copy(template_db, disk / "streamzy.db")
        env = {**secrets_env(), "STREAMZY_DATABASE_URL": f"sqlite+aiosqlite:///{disk}/streamzy.db",
               "STREAMZY_AUDIT_LOG_PATH": str(tmp_path / "audit.log")}
        room, cookie = await seeded(env)
        server = StreamzyProcess(tmp_path, env)
        await server.start()
        client = ChatClient(server.url, cookie=cookie)
        await client.connect()
        await client.call("join", {"room": room})
        filler = disk / "filler"
        with filler.open("wb") as out:  # take every byte that is left
            try:
                while True:
                    out.write(b"\0" * 65536)
                    out.flush()
            except OSError:
                pass
        acks = [await client.send(room, "x" * 3000, f"full-{k}") for k in range(20)]
        failed = [a for a in acks if not a["ok"]]
        assert failed and {a["code"] for a in failed} <= {"store_failed", "unavailable"}
        async with httpx.AsyncClient(base_url=server.url) as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 503 and ready.json()["storage"] == "full"
            page = await http.get("/login")
            token = page.text.split('name="csrf-token" content="')[1].split('"')[0]
            login = await http.post("/login", data={"username": "ann", "password": "y" * 12,
                                                    "csrf_token": token})
            assert login.status_code == 503, login.status_code  # not a 500
        filler.unlink()
        ack = await client.send(room, "space again", "after")
        assert ack["ok"], ack
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/readyz")).json()["storage"] == "writable"
        await client.close()
        server.stop()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def start_refused(cwd: Path, env: dict[str, str], *command: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("STREAMZY_")}
    return subprocess.run(list(command), cwd=cwd, env={**base, "PYTHONPATH": str(ROOT), **env},
                          capture_output=True, text=True, timeout=60, check=False)


async def test_a_refused_start_exits_non_zero_with_one_line(tmp_path: Path,
                                                            template_db: Path) -> None:
    shutil.copy(template_db, tmp_path / "streamzy.db")
    env = {**secrets_env(), "STREAMZY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/streamzy.db",
           "STREAMZY_AUDIT_LOG_PATH": str(tmp_path / "audit.log")}
    await seeded(env)  # a room whose key only the configured master key opens
    wrong = {**env, "STREAMZY_MESSAGE_KEYS": Fernet.generate_key().decode()}
    streamzy = str(Path(sys.executable).parent / "streamzy")
    for command in ([streamzy, "serve", "--port", "0"],
                    [sys.executable, "-m", "hypercorn", "-c", str(ROOT / "hypercorn.toml"),
                     "--bind", "127.0.0.1:0", "streamzy.asgi:app"]):
        done = start_refused(tmp_path, wrong, *command)
        assert done.returncode != 0, (command, done.returncode, done.stderr[-500:])
        lines = [line for line in done.stderr.splitlines() if line.startswith("streamzy: ")]
        assert len(lines) == 1 and "refusing to start" in lines[0], done.stderr[-800:]


async def test_a_read_only_database_refuses_the_start_non_zero(tmp_path: Path,
                                                                template_db: Path) -> None:
    disk = small_disk(tmp_path, "8m")
    try:
        shutil.copy(template_db, disk / "streamzy.db")
        env = {**secrets_env(), "STREAMZY_DATABASE_URL": f"sqlite+aiosqlite:///{disk}/streamzy.db",
               "STREAMZY_AUDIT_LOG_PATH": str(tmp_path / "audit.log")}
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        done = start_refused(tmp_path, env, sys.executable, "-m", "hypercorn", "-c",
                             str(ROOT / "hypercorn.toml"), "--bind", "127.0.0.1:0",
                             "streamzy.asgi:app")
        assert done.returncode != 0, done.stderr[-800:]
        lines = [line for line in done.stderr.splitlines() if line.startswith("streamzy: ")]
        assert len(lines) == 1 and "read-only" in lines[0], done.stderr[-800:]
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
