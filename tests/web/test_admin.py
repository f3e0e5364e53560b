"""The admin console: the queue, approvals, user actions and the audit log."""

from __future__ import annotations

import asyncio
import csv
import html
import io
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from sqlalchemy import select

from streamzy.clock import ManualClock
from streamzy.config import Settings
from streamzy.guards.context import SYSTEM
from streamzy.services.passwords import READABLE_SYMBOLS
from streamzy.storage.models import Application, Base, User
from tests.conftest import TEST_PASSWORD, LiveServer, csrf_of, login, post_form, start_server

ONE_TIME = re.compile(r'id="one-time-password"[^>]*value="([^"]*)"')
EVENT_CELL = re.compile(r'<td class="event"[^>]*><code>([a-z_]+)</code></td>')  # an audit row's event
APPLY = {"display_name": "Some One", "email": "someone@example.org",
         "reason": "I would like to join the team chat."}


async def _submit(client: httpx.AsyncClient, username: str) -> httpx.Response:
    token = await csrf_of(client, "/apply")
    response = await client.post("/apply", data={**APPLY, "username": username,
                                                 "csrf_token": token})
    assert response.status_code == 200 and "apply-reference" in response.text, response.text
    return response


async def _application_id(server: LiveServer, username: str) -> int:
    async with server.services.db.unit() as db:
        return int((await db.execute(select(Application.id).where(
            Application.username == username))).scalar_one())


async def _approve(admin: httpx.AsyncClient, application_id: int) -> httpx.Response:
    return await post_form(admin, f"/admin/applications/{application_id}/approve",
                           page="/admin/applications")


def _one_time_password(page: httpx.Response) -> str:
    match = ONE_TIME.search(page.text)
    assert match, page.text
    return html.unescape(match.group(1))


async def _act(admin: httpx.AsyncClient, user_id: int, action: str) -> httpx.Response:
    return await post_form(admin, f"/admin/users/{user_id}", {"action": action},
                           page="/admin/users")


async def _changes(server: LiveServer) -> list[tuple[int | None, int, str]]:
    rows = await server.audit_rows("account_changed")
    return [(r.user_id, json.loads(r.detail)["target_user_id"], json.loads(r.detail)["action"])
            for r in rows]


@asynccontextmanager
async def _admin_client(server: LiveServer, name: str = "root"
                        ) -> AsyncIterator[httpx.AsyncClient]:
    await server.make_user(name, admin=True)
    async with server.client() as client:
        assert (await login(client, name)).status_code == 302
        yield client


async def test_queue_lists_pending_oldest_first(server: LiveServer) -> None:
    async with server.client() as applicant:
        for name in ("dave", "bob", "erin", "carol"):  # neither alphabetical nor reversed
            await _submit(applicant, name)
            server.clock.advance(90)
    erin = await _application_id(server, "erin")
    async with _admin_client(server) as admin:
        assert (await post_form(admin, f"/admin/applications/{erin}/reject",
                                {"reason": "not known here"},
                                page="/admin/applications")).status_code == 302
        queue = await admin.get("/admin/applications")
    assert queue.status_code == 200
    order = re.findall(r'data-username="([^"]+)"', queue.text)
    assert order == ["dave", "bob", "carol"]
    assert '<span class="badge" id="pending-count">3</span>' in queue.text


async def test_non_admin_is_refused_and_audited(server: LiveServer) -> None:
    user = await server.make_user("bob")
    async with server.client() as client:
        await login(client, "bob")
        for path in ("/admin/applications", "/admin/users", "/admin/audit"):
            response = await client.get(path)
            assert response.status_code == 403 and "Admins only." in response.text
        approve = await post_form(client, "/admin/applications/1/approve")
        assert approve.status_code == 403
    rows = await server.audit_rows("access_denied")
    assert [r.user_id for r in rows] == [user.id] * 4
    assert json.loads(rows[0].detail) == {"path": "/admin/applications"}


async def test_anonymous_is_sent_to_login(server: LiveServer) -> None:
    async with server.client() as client:
        response = await client.get("/admin/applications")
    assert response.status_code == 302
    assert response.headers["location"] == "/login?next=/admin/applications"
    assert await server.audit_rows("access_denied") == []


async def test_approve_shows_a_strong_one_time_password_that_forces_a_change(
        settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory()
    server, shutdown = await start_server(settings, ManualClock())
    try:
        async with server.client() as applicant:
            await _submit(applicant, "bob")
        app_id = await _application_id(server, "bob")
        async with _admin_client(server) as admin:
            page = await _approve(admin, app_id)
        assert page.status_code == 200
        assert page.headers["cache-control"] == "no-store"
        assert '<strong id="new-username">bob</strong>' in page.text
        password = _one_time_password(page)
        assert len(password) == 16
        assert any(c.isupper() for c in password) and any(c.islower() for c in password)
        assert any(c.isdigit() for c in password)
        assert any(c in READABLE_SYMBOLS for c in password)
        assert not set(password) & set("0Oo1lI")  # read out loud without look-alikes
        async with server.client() as bob:
            signed_in = await login(bob, "bob", password)
            assert signed_in.status_code == 302
            assert signed_in.headers["location"] == "/account/password?first=1"
            assert (await bob.get("/account")).headers["location"].startswith(
                "/account/password")
        approved = await server.audit_rows("application_approved")
        assert len(approved) == 1 and '"username": "bob"' in approved[0].detail
        async with server.services.db.unit() as db:
            for table in Base.metadata.sorted_tables:
                for row in (await db.execute(select(table))).all():
                    assert password not in " ".join(map(str, row)), table.name
    finally:
        await shutdown()
    if settings.database_url.startswith("sqlite"):  # the files themselves, WAL included
        db_path = Path(settings.database_url.split(":///", 1)[1])
        raw = await asyncio.to_thread(
            lambda: {p.name: p.read_bytes() for p in db_path.parent.glob(db_path.name + "*")})
        assert db_path.name in raw
        assert [name for name, data in raw.items() if password.encode() in data] == []
    audit_log = await asyncio.to_thread(Path(settings.audit_log_path).read_text, "utf-8")
    assert '"event": "application_approved"' in audit_log  # the file was written
    assert password not in audit_log


async def test_concurrent_approvals_create_exactly_one_user(server: LiveServer) -> None:
    async with server.client() as applicant:
        await _submit(applicant, "bob")
    app_id = await _application_id(server, "bob")
    async with _admin_client(server, "root") as one, \
            _admin_client(server, "root2") as two:
        tokens = [await csrf_of(one, "/admin/applications"),
                  await csrf_of(two, "/admin/applications")]
        results = await asyncio.gather(*(
            client.post(f"/admin/applications/{app_id}/approve", data={"csrf_token": token})
            for client, token in zip((one, two), tokens, strict=True)))
    assert sorted(r.status_code for r in results) == [200, 409]
    conflict = next(r for r in results if r.status_code == 409)
    assert "already approved" in conflict.text
    async with server.services.db.unit() as db:
        users = list((await db.execute(select(User).where(User.username == "bob"))).scalars())
    assert len(users) == 1
    assert len(await server.audit_rows("application_approved")) == 1


async def test_decided_applications_cannot_be_decided_again(server: LiveServer) -> None:
    async with server.client() as applicant:
        await _submit(applicant, "bob")
        await _submit(applicant, "carol")
    bob, carol = await _application_id(server, "bob"), await _application_id(server, "carol")
    async with _admin_client(server) as admin:
        assert (await post_form(admin, f"/admin/applications/{bob}/reject",
                                {"reason": "unknown person"},
                                page="/admin/applications")).status_code == 302
        again = await _approve(admin, bob)
        assert again.status_code == 409 and "already rejected" in again.text
        assert (await _approve(admin, carol)).status_code == 200
        twice = await post_form(admin, f"/admin/applications/{carol}/reject",
                                {"reason": "changed my mind"}, page="/admin/applications")
        assert twice.status_code == 409
        assert (await _approve(admin, 9999)).status_code == 404
    assert await server.services.accounts.by_username("bob") is None


async def test_reject_needs_a_reason_which_is_stored_and_audited(server: LiveServer) -> None:
    async with server.client() as applicant:
        await _submit(applicant, "bob")
    app_id = await _application_id(server, "bob")
    async with _admin_client(server) as admin:
        for data in ({}, {"reason": ""}, {"reason": "  "}):
            response = await post_form(admin, f"/admin/applications/{app_id}/reject", data,
                                       page="/admin/applications")
            assert response.status_code == 400, data
        assert (await server.services.applications.get(app_id)).status == "pending"
        response = await post_form(admin, f"/admin/applications/{app_id}/reject",
                                   {"reason": "We do not know you yet."},
                                   page="/admin/applications")
        assert response.status_code == 302
        assert response.headers["location"] == "/admin/applications?rejected=1"
        queue = await admin.get("/admin/applications")
        assert 'id="queue-empty"' in queue.text
    stored = await server.services.applications.get(app_id)
    assert stored is not None
    assert (stored.status, stored.reject_reason) == ("rejected", "We do not know you yet.")
    rows = await server.audit_rows("application_rejected")
    assert len(rows) == 1
    assert json.loads(rows[0].detail) == {"application_id": app_id,
                                          "reason": "We do not know you yet."}
    assert await server.services.accounts.by_username("bob") is None


async def test_one_time_password_expires_after_72_hours(server: LiveServer) -> None:
    async with server.client() as applicant:
        await _submit(applicant, "bob")
    async with _admin_client(server) as admin:
        password = _one_time_password(await _approve(admin,
                                                     await _application_id(server, "bob")))
    server.clock.advance(72 * 3600 - 1)
    async with server.client() as bob:
        assert (await login(bob, "bob", password)).status_code == 302
    server.clock.advance(2)
    async with server.client() as bob:
        expired = await login(bob, "bob", password)
    assert expired.status_code == 401
    assert "one-time password has expired" in expired.text
    rows = await server.audit_rows("login_failed")
    assert '"reason": "one_time_password_expired"' in rows[-1].detail


async def test_disable_ends_sessions_and_blocks_login_until_enabled(
        server: LiveServer) -> None:
    root = await server.make_user("root", admin=True)
    bob = await server.make_user("bob")
    async with server.client() as admin, server.client() as user:
        await login(admin, "root")
        await login(user, "bob")
        assert (await user.get("/account")).status_code == 200
        assert (await _act(admin, bob.id, "disable")).status_code == 302
        ended = await user.get("/account")
        assert ended.status_code == 302 and ended.headers["location"].startswith("/login")
        assert (await login(user, "bob")).status_code == 401
        users_page = await admin.get("/admin/users")
        assert 'data-action="enable"' in users_page.text
        assert (await _act(admin, bob.id, "enable")).status_code == 302
        assert (await login(user, "bob")).status_code == 302
        assert (await user.get("/account")).status_code == 200
    assert await _changes(server) == [(root.id, bob.id, "disable"), (root.id, bob.id, "enable")]


async def test_unlock_lets_a_locked_user_in(server: LiveServer) -> None:
    root = await server.make_user("root", admin=True)
    bob = await server.make_user("bob")
    async with server.client() as admin, server.client() as user:
        await login(admin, "root")
        for _ in range(5):
            await login(user, "bob", "wrong wrong wrong")
        assert (await login(user, "bob")).status_code == 401
        assert 'data-action="unlock"' in (await admin.get("/admin/users")).text
        assert (await _act(admin, bob.id, "unlock")).status_code == 302
        assert (await login(user, "bob")).status_code == 302
    assert await _changes(server) == [(root.id, bob.id, "unlock")]


async def test_reset_password_shows_a_new_one_and_ends_sessions(server: LiveServer) -> None:
    root = await server.make_user("root", admin=True)
    bob = await server.make_user("bob")
    async with server.client() as admin, server.client() as user:
        await login(admin, "root")
        await login(user, "bob")
        page = await _act(admin, bob.id, "reset_password")
        assert page.status_code == 200 and "Password reset" in page.text
        password = _one_time_password(page)
        assert len(password) == 16 and password != TEST_PASSWORD
        assert (await user.get("/account")).status_code == 302
        assert (await login(user, "bob")).status_code == 401
        fresh = await login(user, "bob", password)
        assert fresh.headers["location"] == "/account/password?first=1"
    assert await _changes(server) == [(root.id, bob.id, "reset_password")]


async def test_grant_and_revoke_admin(server: LiveServer) -> None:
    root = await server.make_user("root", admin=True)
    bob = await server.make_user("bob")
    async with server.client() as admin, server.client() as user:
        await login(admin, "root")
        await login(user, "bob")
        assert (await user.get("/admin/users")).status_code == 403
        assert (await _act(admin, bob.id, "grant_admin")).status_code == 302
        assert (await user.get("/admin/users")).status_code == 200
        assert (await _act(admin, bob.id, "revoke_admin")).status_code == 302
        assert (await user.get("/admin/users")).status_code == 403
    assert await _changes(server) == [(root.id, bob.id, "grant_admin"),
                                      (root.id, bob.id, "revoke_admin")]


async def test_an_admin_cannot_disable_or_demote_themselves(server: LiveServer) -> None:
    root = await server.make_user("root", admin=True)
    await server.make_user("other", admin=True)
    async with server.client() as admin:
        await login(admin, "root")
        for action in ("disable", "revoke_admin"):
            response = await _act(admin, root.id, action)
            assert response.status_code == 403, action
            assert "own account" in response.text
        assert (await admin.get("/admin/users")).status_code == 200
        assert (await _act(admin, 9999, "disable")).status_code == 404
        assert (await _act(admin, root.id, "make_me_root")).status_code == 400
    me = await server.services.accounts.get(root.id)
    assert me is not None and me.is_admin and me.is_active
    assert await _changes(server) == []


async def test_audit_page_filters_and_exports(server: LiveServer) -> None:
    root = await server.make_user("root", admin=True)
    bob = await server.make_user("bob")
    formula = "=HYPERLINK(\"http://evil.example\",\"x\")"
    async with server.client(headers={"User-Agent": formula}) as attacker:
        await login(attacker, "bob", "wrong wrong wrong")
        await login(attacker, "nobody", "wrong wrong wrong")
    async with server.client() as admin:
        await login(admin, "root")
        failed = await admin.get("/admin/audit", params={"event": "login_failed"})
        assert failed.status_code == 200
        events = EVENT_CELL.findall(failed.text)
        assert events == ["login_failed", "login_failed"]
        assert "=HYPERLINK(&#34;http://evil.example&#34;" in failed.text
        mine = await admin.get("/admin/audit", params={"user_id": str(bob.id)})
        assert EVENT_CELL.findall(mine.text) == ["login_failed"]
        bad = await admin.get("/admin/audit", params={"event": "DROP TABLE"})
        assert bad.status_code == 400

        as_csv = await admin.get("/admin/audit", params={"event": "login_failed",
                                                         "format": "csv"})
        assert as_csv.status_code == 200
        assert as_csv.headers["content-type"].startswith("text/csv")
        assert as_csv.headers["content-disposition"] == 'attachment; filename="audit.csv"'
        rows = list(csv.DictReader(io.StringIO(as_csv.text)))
        assert [r["event"] for r in rows] == ["login_failed", "login_failed"]
        assert {r["user_agent"] for r in rows} == {"'" + formula}
        assert not any(cell.startswith(("=", "+", "-", "@")) for r in rows
                       for cell in r.values())

        as_json = await admin.get("/admin/audit", params={"user_id": str(bob.id),
                                                          "format": "json"})
        assert as_json.status_code == 200
        assert as_json.headers["content-type"].startswith("application/json")
        assert as_json.headers["content-disposition"] == 'attachment; filename="audit.json"'
        records = as_json.json()
        assert [(r["event"], r["user_id"]) for r in records] == [("login_failed", bob.id)]
        assert records[0]["detail"]["reason"] == "bad_password"
        assert records[0]["user_agent"] == formula
    exported = await server.audit_rows("audit_exported")
    assert [(r.user_id, json.loads(r.detail)["format"]) for r in exported] == [
        (root.id, "csv"), (root.id, "json")]



async def test_admins_decide_which_bots_take_direct_messages(server: LiveServer) -> None:
    async with _admin_client(server) as admin:
        root = await server.services.accounts.by_username("root")
        assert root is not None
        bot, _ = await server.services.bots.create(root.id, "pager", "Pager", [], SYSTEM)
        assert bot.accepts_dms is False  # bots take none until an admin allows it
        page = await admin.get("/admin/bots")
        assert f'/admin/bots/{bot.id}/dms/on' in page.text
        allowed = await post_form(admin, f"/admin/bots/{bot.id}/dms/on")
        assert allowed.status_code == 302 and "done=dms_on" in allowed.headers["location"]
        assert (await server.services.accounts.get(bot.id)).accepts_dms is True  # type: ignore[union-attr]
        assert (await post_form(admin, f"/admin/bots/{root.id}/dms/on")).status_code == 404
        assert (await post_form(admin, f"/admin/bots/{bot.id}/dms/maybe")).status_code == 404
    await server.make_user("plain")
    async with server.client() as plain:
        assert (await login(plain, "plain")).status_code == 302
        refused = await post_form(plain, f"/admin/bots/{bot.id}/dms/off")
        assert refused.status_code == 403
    assert (await server.services.accounts.get(bot.id)).accepts_dms is True  # type: ignore[union-attr]
    assert [a.event for a in await server.audit_rows("bot_dms_allowed")] == ["bot_dms_allowed"]
