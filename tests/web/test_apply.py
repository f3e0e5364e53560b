"""Applying to join: the journey, one canonical name, strict input, escaped output."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import func, select

from streamzy.storage.models import Application
from tests.conftest import LiveServer, csrf_of, login

GOOD = {"username": "alice", "display_name": "Alice Liddell", "email": "alice@example.org",
        "reason": "I work with the team and would like to join the chat."}
FORM = 'action="/apply"'
FULL_WIDTH_ALICE = "\uff21\uff2c\uff29\uff23\uff25"  # NFKC folds it to ALICE
FORM_TYPE = {"Content-Type": "application/x-www-form-urlencoded"}


async def _apply(client: httpx.AsyncClient, **changes: str) -> httpx.Response:
    token = await csrf_of(client, "/apply")
    return await client.post("/apply", data={**GOOD, **changes, "csrf_token": token})


async def _stored(server: LiveServer) -> int:
    async with server.services.db.unit() as db:
        return int((await db.execute(select(func.count()).select_from(Application))
                    ).scalar_one())


async def test_apply_journey(server: LiveServer) -> None:
    async with server.client() as client:
        form = await client.get("/apply")
        assert form.status_code == 200 and FORM in form.text
        response = await _apply(client)
        assert response.status_code == 302
        assert response.headers["location"] == "/apply/done"
        done = await client.get("/apply/done")
        assert done.status_code == 200
        assert "Your application is waiting for an administrator" in done.text
    pending = await server.services.applications.pending()
    assert len(pending) == 1
    app = pending[0]
    assert (app.username, app.display_name, app.email, app.status) == (
        "alice", "Alice Liddell", "alice@example.org", "pending")
    assert app.client_ip == "127.0.0.1"
    rows = await server.audit_rows("application_submitted")
    assert len(rows) == 1
    assert json.loads(rows[0].detail) == {"application_id": app.id, "username": "alice"}


@pytest.mark.parametrize("variant", [FULL_WIDTH_ALICE, "Alice", " alice "])
async def test_name_variants_collide_with_the_pending_name(server: LiveServer,
                                                           variant: str) -> None:
    async with server.client() as client:
        assert (await _apply(client)).status_code == 302
        again = await _apply(client, username=variant, email="other@example.org")
    assert again.status_code == 409
    assert "already waiting" in again.text and FORM in again.text
    assert await _stored(server) == 1


async def test_a_taken_name_is_refused(server: LiveServer) -> None:
    await server.make_user("alice")
    async with server.client() as client:
        response = await _apply(client, username="Alice")
    assert response.status_code == 409
    assert "already taken" in response.text and FORM in response.text
    assert await _stored(server) == 0


async def test_a_cyrillic_lookalike_is_refused_not_stored(server: LiveServer) -> None:
    async with server.client() as client:
        assert (await _apply(client)).status_code == 302
        lookalike = await _apply(client, username="\u0430lice", email="x@example.org")
    assert lookalike.status_code == 400
    assert "not allowed" in lookalike.text and FORM in lookalike.text
    assert [a.username for a in await server.services.applications.pending()] == ["alice"]


@pytest.mark.parametrize("changes", [
    {"username": "ali\x00ce"},
    {"display_name": "Alice\x07"},
    {"display_name": "Alice\u202egnp.exe"},          # bidi override disguises text
    {"display_name": "Alice\nLiddell"},              # single-line field
    {"reason": "I would like to join\x1b[31m the chat."},
    {"username": "a" * 65},
    {"display_name": "d" * 65},
    {"reason": "r" * 1001},
    {"email": "e" * 250 + "@example.org"},
    {"email": "not-an-email"},
    {"email": "alice@localhost"},
    {"reason": "too short"},
    {"reason": ""},
    {"is_admin": "1"},
], ids=lambda c: next(iter(c)) + ":" + repr(next(iter(c.values())))[:12])
async def test_bad_input_is_refused_and_nothing_is_stored(server: LiveServer,
                                                          changes: dict[str, str]) -> None:
    async with server.client() as client:
        response = await _apply(client, **changes)
    assert response.status_code == 400
    assert FORM in response.text and "Please correct the marked fields." in response.text
    assert await _stored(server) == 0
    assert await server.audit_rows("application_submitted") == []


async def test_a_missing_field_is_refused(server: LiveServer) -> None:
    async with server.client() as client:
        token = await csrf_of(client, "/apply")
        data = {k: v for k, v in GOOD.items() if k != "email"}
        response = await client.post("/apply", data={**data, "csrf_token": token})
    assert response.status_code == 400 and "This field is required." in response.text
    assert await _stored(server) == 0


async def test_a_repeated_field_is_refused(server: LiveServer) -> None:
    async with server.client() as client:
        token = await csrf_of(client, "/apply")
        body = httpx.QueryParams({**GOOD, "csrf_token": token}).add("username", "mallory")
        response = await client.post("/apply", content=str(body), headers=FORM_TYPE)
    assert response.status_code == 400
    assert "Send this field once." in response.text and FORM in response.text
    assert await _stored(server) == 0


async def test_a_json_body_is_refused_as_unsupported(server: LiveServer) -> None:
    async with server.client() as client:
        token = await csrf_of(client, "/apply")
        response = await client.post("/apply", json=GOOD, headers={"X-CSRF-Token": token})
    assert response.status_code == 415
    assert await _stored(server) == 0


async def test_a_body_over_the_limit_is_refused(server: LiveServer) -> None:
    async with server.client() as client:
        response = await _apply(client, reason="x" * 40_000)
    assert response.status_code == 413
    assert await _stored(server) == 0


async def test_user_content_is_escaped_in_the_form_and_the_admin_queue(
        server: LiveServer) -> None:
    script = "<script>alert(1)</script>"
    await server.make_user("root", admin=True)
    async with server.client() as client:
        refused = await _apply(client, display_name=script, email="bad")
        assert refused.status_code == 400
        assert script not in refused.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in refused.text
        accepted = await _apply(client, display_name=script,
                                reason=f'"><img src=x onerror=alert(2)> {script}')
        assert accepted.status_code == 302
    async with server.client() as admin:
        await login(admin, "root")
        queue = await admin.get("/admin/applications")
    assert queue.status_code == 200
    assert script not in queue.text and "<img src=x" not in queue.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in queue.text
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in queue.text
