"""Two Streamzy processes over Redis: fan-out, revocation and one shared message budget."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from streamzy.config import Settings
from streamzy.guards.context import SYSTEM
from streamzy.wiring import build_services
from tests.conftest import CSRF_META, free_port, need_service
from tests.faults.processes import user_session
from tests.realtime.helpers import connected
from tests.waiting import process_alive, wait_until_healthy

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def cluster(tmp_path: Path, database_url: str) -> AsyncIterator[dict]:
    redis_url = need_service("STREAMZY_TEST_REDIS_URL", "Redis")
    from redis.asyncio import Redis
    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    await redis.aclose()
    env = {
        **os.environ,
        "STREAMZY_DATABASE_URL": database_url,
        "STREAMZY_REDIS_URL": redis_url,
        "STREAMZY_SECRET_KEY": "cluster-secret-" + "k7" * 20,
        "STREAMZY_PASSWORD_PEPPER": "cluster-pepper-" + "p6" * 20,
        "STREAMZY_MESSAGE_KEYS": Fernet.generate_key().decode(),
        "STREAMZY_BCRYPT_ROUNDS": "4",
        "STREAMZY_AUDIT_LOG_PATH": str(tmp_path / "audit.log"),
    }
    ports = [free_port(), free_port()]
    procs = [subprocess.Popen(
        [sys.executable, "-m", "hypercorn", "--bind", f"127.0.0.1:{port}",
         "streamzy.asgi:app"], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for port in ports]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for url, proc in zip(urls, procs, strict=True):
            await wait_until_healthy(url, alive=process_alive(proc, "hypercorn"))
        settings = Settings(_env_file=None, database_url=env["STREAMZY_DATABASE_URL"],
                            secret_key=env["STREAMZY_SECRET_KEY"],
                            password_pepper=env["STREAMZY_PASSWORD_PEPPER"],
                            message_keys=env["STREAMZY_MESSAGE_KEYS"], bcrypt_rounds=4,
                            audit_log_path="")
        services = build_services(settings)
        yield {"urls": urls, "services": services}
        await services.close()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)


async def test_two_processes_share_delivery_revocation_and_budget(cluster: dict) -> None:
    services = cluster["services"]
    url_a, url_b = cluster["urls"]
    admin, _ = await services.accounts.create_user("boss", "Boss", "", is_admin=True)
    room = (await services.rooms.create(admin.id, "general", "", False, SYSTEM)).id
    alice_cookie = await user_session(services, "alice")
    bob_cookie = await user_session(services, "bob")
    alice = await connected(url_a, cookie=alice_cookie, rooms=[room])
    bob = await connected(url_b, cookie=bob_cookie, rooms=[room])
    alice_on_b = await connected(url_b, cookie=alice_cookie, rooms=[room])
    try:
        ack = await alice.send(room, "across processes")
        assert ack["ok"]
        await bob.wait_for(lambda: bob.texts(room) == ["across processes"])

        # Edits and reactions made on A reach B, after the message, in order; a mention
        # reaches the named person's watching socket on the other process.
        assert (await alice.call("edit", {"room": room, "id": ack["id"],
                                          "text": "across processes, edited"}))["ok"]
        assert (await bob.call("react", {"room": room, "id": ack["id"], "emoji": "👋"}))["ok"]
        await alice.wait_for(lambda: len(alice.received("message_changed")) == 2)
        assert [c["change_seq"] for c in alice.received("message_changed")] == [1, 2]
        await bob.wait_for(lambda: len(bob.received("message_changed")) == 2)
        assert bob.received("message_changed")[0]["message"]["text"] == \
            "across processes, edited"
        assert (await bob.call("watch", {"rooms": [room]}))["ok"]
        assert (await alice.send(room, "@bob see this"))["ok"]
        await bob.wait_for(lambda: bob.received("notify"))
        assert bob.received("notify")[0]["kind"] == "mention"

        # One budget of 30 messages a minute, whichever process counts them.
        sent = 1
        sent += 2  # the edit and the mention spent alice's budget too
        while sent < 30:
            client = alice if sent % 2 else alice_on_b
            assert (await client.send(room, f"m{sent}"))["ok"]
            sent += 1
        over = await alice_on_b.send(room, "thirty-first")
        assert not over["ok"] and over["code"] == "rate_limited"

        # Logging out on A disconnects alice's socket on B too (through Redis).
        async with httpx.AsyncClient(base_url=url_a,
                                     cookies={"streamzy_session": alice_cookie}) as http:
            page = await http.get("/account")
            token = CSRF_META.search(page.text).group(1)  # type: ignore[union-attr]
            response = await http.post("/logout", data={"csrf_token": token})
            assert response.status_code == 302
        assert await alice_on_b.end_reason() == "logout"
        assert await alice.end_reason() == "logout"
    finally:
        for client in (alice, bob, alice_on_b):
            await client.close()


def _server_env(tmp_path: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMZY_")}
    return {**env, "PYTHONPATH": str(ROOT), "STREAMZY_DATABASE_URL": database_url,
            "STREAMZY_SECRET_KEY": "solo-secret-" + "k7" * 20,
            "STREAMZY_PASSWORD_PEPPER": "solo-pepper-" + "p6" * 20,
            "STREAMZY_MESSAGE_KEYS": Fernet.generate_key().decode(),
            "STREAMZY_AUDIT_LOG_PATH": str(tmp_path / "audit.log")}


async def test_a_second_process_without_redis_refuses_to_start(
        tmp_path: Path, database_url: str) -> None:
    env = _server_env(tmp_path, database_url)
    port = free_port()
    first = subprocess.Popen([sys.executable, "-m", "hypercorn", "--bind",
                              f"127.0.0.1:{port}", "streamzy.asgi:app"], cwd=tmp_path, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await wait_until_healthy(f"http://127.0.0.1:{port}", alive=process_alive(first))
        # --workers 0 serves in-process, so the refusal's exit status reaches us (Hypercorn's
        # worker-spawning master reports 0 for a worker that exited 3).
        second = subprocess.run(
            [sys.executable, "-m", "hypercorn", "--workers", "0", "--bind",
             f"127.0.0.1:{free_port()}", "streamzy.asgi:app"], cwd=tmp_path, env=env,
            capture_output=True, timeout=60, check=False)
        assert second.returncode == 3
        assert b"another Streamzy process already serves this database" in second.stderr
        assert b"STREAMZY_REDIS_URL" in second.stderr
    finally:
        first.terminate()
        first.wait(10)
