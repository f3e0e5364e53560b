"""Streamzy is a plain ASGI app: the same chat works when Uvicorn serves it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from streamzy.guards.context import SYSTEM
from tests.conftest import free_port
from tests.faults.processes import ROOT, admin_services, secrets_env, user_session
from tests.realtime.helpers import ChatClient, connected
from tests.waiting import process_alive, wait_until_healthy


async def test_chat_under_uvicorn(tmp_path: Path, database_url: str) -> None:
    env = {**secrets_env(), "STREAMZY_DATABASE_URL": database_url,
           "STREAMZY_AUDIT_LOG_PATH": str(tmp_path / "audit.log")}
    services = admin_services(env)
    admin, _ = await services.accounts.create_user("boss", "Boss", "", is_admin=True)
    room = (await services.rooms.create(admin.id, "general", "", False, SYSTEM)).id
    cookies = [await user_session(services, n) for n in ("ann", "ben")]
    await services.close()
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("STREAMZY_")}
    # --no-proxy-headers: Uvicorn would otherwise trust X-Forwarded-For from 127.0.0.1 itself;
    # Streamzy's own ProxyFix (STREAMZY_TRUSTED_HOPS) decides which hops to believe.
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "streamzy.asgi:app", "--host", "127.0.0.1",
         "--port", str(port), "--no-proxy-headers", "--ws", "wsproto", "--log-level", "warning"],
        cwd=tmp_path, env={**base, "PYTHONPATH": str(ROOT), **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    clients: list[ChatClient] = []
    try:
        response = await wait_until_healthy(url, alive=process_alive(proc, "uvicorn"))
        assert "content-security-policy" in response.headers
        for cookie in cookies:
            clients.append(await connected(url, cookie=cookie, rooms=[room]))
        assert (await clients[0].send(room, "served by uvicorn"))["ok"]
        await clients[1].wait_for(lambda: clients[1].texts(room) == ["served by uvicorn"])
    finally:
        for client in clients:
            await client.close()
        proc.terminate()
        proc.wait(10)
