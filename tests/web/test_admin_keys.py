"""The console's key page: ``streamzy keys`` as a page, and the master re-wrap behind a
fresh step-up, audited with the admin who asked."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from streamzy.clock import ManualClock
from streamzy.config import Settings
from streamzy.storage.crypto import master_key_id
from streamzy.storage.models import TotpCredential
from streamzy.wiring import build_services
from tests.conftest import CLIENT, TEST_PASSWORD, LiveServer, csrf_of, login, make_user, start_server
from tests.totp import enrol

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


@pytest.fixture
async def rotated(settings_factory: Callable[..., Settings]) -> Any:
    """Two rooms made under master key OLD; then the server runs with NEW put first."""
    made = build_services(settings_factory(message_keys=[OLD]), ManualClock())
    try:
        owner = await make_user(made, "root", admin=True)
        for name in ("general", "ops"):
            await made.rooms.create(owner.id, name, "", False, CLIENT)
        # A TOTP secret sealed under OLD: the console's re-wrap must move it too.
        await enrol(made, await make_user(made, "tess"))
    finally:
        await made.close()
    live, shutdown = await start_server(settings_factory(message_keys=[NEW, OLD]),
                                        ManualClock())
    try:
        yield live
    finally:
        await shutdown()


async def test_the_key_page_rewraps_under_the_newest_key_after_a_step_up(
        rotated: LiveServer) -> None:
    server = rotated
    old, new = master_key_id(OLD), master_key_id(NEW)
    await server.make_user("mia")
    async with server.client() as admin, server.client() as member:
        assert (await login(admin, "root")).status_code == 302
        page = await admin.get("/admin/keys")
        assert page.status_code == 200 and 'href="/admin/keys"' in page.text
        assert f'data-key-id="{new}"' in page.text and f'data-key-id="{old}"' in page.text
        assert "still in use" in page.text and OLD not in page.text and NEW not in page.text
        token = await csrf_of(admin, "/admin/keys")
        server.clock.advance(server.services.settings.step_up_seconds + 1)
        refused = await admin.post("/admin/keys/rewrap", data={"csrf_token": token},
                                   headers={"Referer": server.url + "/admin/keys"})
        assert refused.status_code == 303
        assert refused.headers["location"] == "/account/confirm?next=/admin/keys"
        assert (await server.services.key_console.status()).masters[1].room_keys == 2
        assert (await admin.post("/account/confirm", data={
            "password": TEST_PASSWORD, "next": "/admin/keys",
            "csrf_token": token})).status_code == 303
        done = await admin.post("/admin/keys/rewrap", data={"csrf_token": token})
        assert done.status_code == 302 and done.headers["location"] == "/admin/keys#rewrap"
        after = await admin.get("/admin/keys")
        assert f"2 room key(s) re-wrapped under <code>{new}</code>" in after.text
        assert "can be retired" in after.text
        assert (await login(member, "mia")).status_code == 302
        assert (await member.get("/admin/keys")).status_code == 403
        assert (await member.post("/admin/keys/rewrap", data={
            "csrf_token": await csrf_of(member, "/account")})).status_code == 403
    status = await server.services.key_console.status()
    assert [(m.key_id, m.room_keys) for m in status.masters] == [(new, 2), (old, 0)]
    root = await server.services.accounts.by_username("root")
    assert root is not None
    rows = await server.audit_rows("keys_rotated")
    assert [(r.user_id, json.loads(r.detail)) for r in rows] == [
        (root.id, {"kind": "master", "via": "console", "rewrapped": 2, "unusable": 0,
                   "totp_resealed": 1, "totp_unusable": 0, "master_key_id": new})]
    async with server.services.db.unit() as db:
        sealed_by = (await db.execute(select(TotpCredential.master_key_id))).scalars().all()
    assert sealed_by == [new]
