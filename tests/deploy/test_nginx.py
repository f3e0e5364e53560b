"""deploy/nginx/streamzy.conf in front of two production-mode Streamzy processes: TLS, WSS,
one trusted hop (a spoofed X-Forwarded-For changes nothing), Secure __Host- cookies."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import socketio
from sqlalchemy import select

from streamzy.guards.context import SYSTEM
from streamzy.storage.models import AuditEvent
from tests.conftest import REQUIRE_SERVICES, free_port, need_service
from tests.faults.processes import StreamzyProcess, admin_services, secrets_env, user_session
from tests.realtime.helpers import ChatClient, connected
from tests.waiting import process_alive, wait_until_healthy

ROOT = Path(__file__).resolve().parents[2]
SECURE_COOKIE = "__Host-streamzy_session"  # production cookie name behind TLS
METRICS_TOKEN = "nginx-test-metrics-" + "qrstuvwxyz0123456789"


def _require(binary: str) -> str:
    path = shutil.which(binary) or (f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists()
                                    else None)
    if path is None:
        if REQUIRE_SERVICES:
            pytest.fail(f"{binary} is not installed (.ci/run installs it)")
        pytest.skip(f"{binary} is not installed")
    return path


@pytest.fixture
async def stack(tmp_path: Path, database_url: str) -> AsyncIterator[dict]:
    nginx, openssl = _require("nginx"), _require("openssl")
    redis_url = need_service("STREAMZY_TEST_REDIS_URL", "Redis")
    tls_port, http_port = free_port(), free_port()
    origin = f"https://127.0.0.1:{tls_port}"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True)
    env = {**secrets_env(), "STREAMZY_DATABASE_URL": database_url,
           "STREAMZY_REDIS_URL": redis_url, "STREAMZY_ENV": "production",
           "STREAMZY_COOKIE_SECURE": "true", "STREAMZY_TRUSTED_HOPS": "1",
           "STREAMZY_ALLOWED_ORIGINS": origin, "STREAMZY_BCRYPT_ROUNDS": "12",
           "STREAMZY_AUDIT_LOG_PATH": str(tmp_path / "audit.log"),
           "STREAMZY_METRICS_TOKEN": METRICS_TOKEN}
    apps = [StreamzyProcess(tmp_path, env), StreamzyProcess(tmp_path, env)]
    site = (ROOT / "deploy" / "nginx" / "streamzy.conf").read_text()
    site = site.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{tls_port} ssl http2;")
    site = site.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    site = site.replace("/etc/ssl/streamzy/fullchain.pem", str(tmp_path / "cert.pem"))
    site = site.replace("/etc/ssl/streamzy/privkey.pem", str(tmp_path / "key.pem"))
    site = re.sub(r"server 127\.0\.0\.1:8001;\s*server 127\.0\.0\.1:8002;",
                  f"server 127.0.0.1:{apps[0].port}; server 127.0.0.1:{apps[1].port};", site)
    temp = tmp_path / "nginx-temp"
    temp.mkdir()
    (tmp_path / "nginx.conf").write_text(f"""
daemon off;
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    {site}
}}
""")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        (tmp_path / "nginx.conf").write_text(
            "user root;\n" + (tmp_path / "nginx.conf").read_text())
    check = subprocess.run([nginx, "-t", "-c", str(tmp_path / "nginx.conf")],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    for app in apps:
        await app.start()
    proc = subprocess.Popen([nginx, "-c", str(tmp_path / "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await wait_until_healthy(origin, alive=process_alive(proc, "nginx"), verify=False)
        yield {"origin": origin, "env": env, "http_port": http_port, "apps": apps}
    finally:
        proc.terminate()
        proc.wait(10)
        for app in apps:
            app.stop()


async def test_tls_proxy_trusted_hop_and_wss(stack: dict) -> None:
    origin = stack["origin"]
    services = admin_services(stack["env"])
    admin, _ = await services.accounts.create_user("boss", "Boss", "", is_admin=True)
    room = (await services.rooms.create(admin.id, "general", "", False, SYSTEM)).id
    cookies = [await user_session(services, n) for n in ("ann", "ben")]
    async with httpx.AsyncClient(base_url=origin, verify=False) as http:
        page = await http.get("/login")
        assert page.status_code == 200
        assert "max-age=63072000" in page.headers["strict-transport-security"]
        assert "__Host-streamzy_anon" in page.headers["set-cookie"]
        assert "Secure" in page.headers["set-cookie"]
        token = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
        failed = await http.post("/login", headers={"X-Forwarded-For": "6.6.6.6",
                                                    "Origin": origin},
                                 data={"username": "ann", "password": "wrong password!",
                                       "csrf_token": token})
        assert failed.status_code == 401
        # /metrics: never through the public proxy, even with the token; each instance
        # answers Prometheus on its own (private) port.
        bearer = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        assert (await http.get("/metrics", headers=bearer)).status_code == 404
        direct = await http.get(f"{stack['apps'][0].url}/metrics", headers=bearer)
        assert direct.status_code == 200 and "streamzy_sign_ins_total" in direct.text
        plain = await http.get(f"http://127.0.0.1:{stack['http_port']}/login")
        assert plain.status_code == 301 and plain.headers["location"].startswith("https://")
    async with services.db.unit() as db:
        rows = (await db.execute(select(AuditEvent).where(
            AuditEvent.event == "login_failed"))).scalars().all()
    assert [r.client_ip for r in rows] == ["127.0.0.1"]  # nginx's peer, not the spoofed value

    clients: list[ChatClient] = []
    try:
        for cookie in cookies:
            async with httpx.AsyncClient(base_url=origin, verify=False, cookies={
                    SECURE_COOKIE: cookie}) as http:
                account = await http.get("/account")
                csrf = re.search(r'name="csrf-token" content="([^"]+)"', account.text).group(1)
            clients.append(await connected(origin, cookie=cookie, cookie_name=SECURE_COOKIE,
                                           ssl_verify=False, headers={"Origin": origin},
                                           csrf=csrf, rooms=[room]))
        assert (await clients[0].send(room, "over wss", "tls-1"))["ok"]
        await clients[1].wait_for(lambda: clients[1].texts(room) == ["over wss"])
        evil = ChatClient(origin, cookie=cookies[0], cookie_name=SECURE_COOKIE,
                          ssl_verify=False, headers={"Origin": "https://evil.example"})
        with pytest.raises(socketio.exceptions.ConnectionError):
            await evil.connect()
    finally:
        for client in clients:
            await client.close()
        await services.close()
