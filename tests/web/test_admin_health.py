"""The admin health page and ``streamzy check-config --live`` against a real running server."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import update

from streamzy.storage import system_state
from streamzy.storage.models import User
from tests.conftest import LiveServer, login

ROOT = Path(__file__).resolve().parents[2]


async def test_the_page_scores_every_item_for_an_admin(server: LiveServer) -> None:
    await server.make_user("ada", admin=True)
    async with server.client() as admin:
        await login(admin, "ada")
        page = await admin.get("/admin/health")
        assert page.status_code == 200
        assert 'id="health-score"' in page.text and 'id="nav-health"' in page.text
        for item in ("settings-mode", "served-cookies", "served-headers", "keys-unwrap",
                     "second_factor-admins", "backup", "audit_chain", "dependencies"):
            assert f'id="item-{item}"' in page.text, item
        # probed in-process through the whole stack: development cookies and headers pass
        assert 'id="item-served-headers" data-status="pass"' in page.text
        assert 'id="item-served-cookies" data-status="pass"' in page.text
        assert 'id="item-backup" data-status="fail"' in page.text
        assert 'id="item-second_factor-admins" data-status="fail"' in page.text


async def test_the_page_is_refused_to_others(server: LiveServer) -> None:
    await server.make_user("bob")
    async with server.client() as anonymous:
        assert (await anonymous.get("/admin/health")).status_code in (302, 303)
    async with server.client() as member:
        await login(member, "bob")
        assert (await member.get("/admin/health")).status_code == 403


def cli_env(server: LiveServer, tmp_path: Path) -> dict[str, str]:
    settings = server.services.settings
    base = {k: v for k, v in os.environ.items() if not k.startswith("STREAMZY_")}
    return {**base, "PYTHONPATH": str(ROOT),
            "STREAMZY_DATABASE_URL": settings.database_url,
            "STREAMZY_SECRET_KEY": settings.secret_key.get_secret_value(),
            "STREAMZY_PASSWORD_PEPPER": settings.password_pepper.get_secret_value(),
            "STREAMZY_MESSAGE_KEYS": ",".join(k.get_secret_value()
                                              for k in settings.message_keys),
            "STREAMZY_BACKUP_KEY": "x" * 43, "STREAMZY_BCRYPT_ROUNDS": "12",
            "STREAMZY_AUDIT_LOG_PATH": str(tmp_path / "cli-audit.log")}


async def check_live(server: LiveServer, tmp_path: Path, url: str = "") -> tuple[int, str]:
    # Not subprocess.run: the server runs on this event loop and must answer meanwhile.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streamzy.cli", "check-config", "--live", "--url",
        url or server.url,
        cwd=tmp_path, env=cli_env(server, tmp_path), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    async with asyncio.timeout(120):
        out, _ = await process.communicate()
    return int(process.returncode or 0), out.decode()


async def test_check_config_live_passes_a_sound_deployment_and_fails_a_broken_one(
        server: LiveServer, tmp_path: Path) -> None:
    admin = await server.make_user("ada", admin=True)
    async with server.services.db.unit() as db:
        await db.execute(update(User).where(User.id == admin.id).values(has_second_factor=True))
    now = datetime.now(UTC)  # the command reads the wall clock
    await system_state.write_json(server.services.db, system_state.BACKUP_VERIFIED,
                                  {"file": "b.szb", "at": now.isoformat(), "messages": 0,
                                   "ok": True}, now)
    await system_state.write_json(server.services.db, system_state.AUDIT_VERIFIED,
                                  {"at": now.isoformat(), "ok": True, "rows": 1}, now)
    code, out = await check_live(server, tmp_path)
    assert code == 0, out
    assert "[PASS] Cookies as served" in out and "[PASS] Headers as served" in out
    assert "[WARN] Mode: development mode" in out and "score " in out
    assert "[FAIL]" not in out

    await system_state.write_json(server.services.db, system_state.BACKUP_VERIFIED,
                                  {"file": "b.szb", "at": now.isoformat(), "messages": 0,
                                   "ok": False}, now)
    code, out = await check_live(server, tmp_path)
    assert code == 1, out
    assert "[FAIL] Last verified backup" in out


async def test_check_config_live_warns_when_the_server_cannot_be_reached(
        server: LiveServer, tmp_path: Path) -> None:
    code, out = await check_live(server, tmp_path, "http://127.0.0.1:9")  # nothing there
    assert code == 1, out  # no backup recorded: a FAIL regardless
    assert "[WARN] Cookies as served: could not fetch the sign-in page" in out
