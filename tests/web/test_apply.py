"""Applying to join: the journey, one canonical name, strict input, escaped output."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from sqlalchemy import func, select

from streamzy.storage.crypto import token_digest
from streamzy.storage.models import Application
from tests.conftest import LiveServer, csrf_of, login

GOOD = {"username": "alice", "display_name": "Alice Liddell", "email": "alice@example.org",
        "reason": "I work with the team and would like to join the chat."}
FORM = 'action="/apply"'
FULL_WIDTH_ALICE = "\uff21\uff2c\uff29\uff23\uff25"  # NFKC folds it to ALICE
FORM_TYPE = {"Content-Type": "application/x-www-form-urlencoded"}
REFERENCE = re.compile(r'id="apply-reference"[^>]* value="([A-Z2-7-]+)"')


def reference_in(page: httpx.Response) -> str:
    match = REFERENCE.search(page.text)
    assert match, page.text
    return match.group(1)


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
        assert response.status_code == 200
        assert "Your application is waiting for an administrator" in response.text
        reference = reference_in(response)
        assert re.fullmatch(r"([A-Z2-7]{4}-){5}[A-Z2-7]{4}", reference)
    pending = await server.services.applications.pending()
    assert len(pending) == 1
    app = pending[0]
    assert (app.username, app.display_name, app.email, app.status) == (
        "alice", "Alice Liddell", "alice@example.org", "pending")
    assert app.client_ip == "127.0.0.1"
    # Stored only as a digest, like session tokens.
    assert app.reference_digest == token_digest(reference.replace("-", ""))
    rows = await server.audit_rows("application_submitted")
    assert len(rows) == 1
    assert json.loads(rows[0].detail) == {"application_id": app.id, "username": "alice"}
    assert reference not in rows[0].detail


def _without_reference(page: httpx.Response) -> str:
    return REFERENCE.sub("REFERENCE", page.text)


@pytest.mark.parametrize("variant", [FULL_WIDTH_ALICE, "Alice", " alice "])
async def test_a_name_already_requested_gets_the_same_answer(server: LiveServer,
                                                             variant: str) -> None:
    async with server.client() as client:
        first = await _apply(client)
        again = await _apply(client, username=variant, email="other@example.org")
    assert first.status_code == again.status_code == 200
    assert _without_reference(first) == _without_reference(again)
    assert reference_in(first) != reference_in(again)
    assert await _stored(server) == 2
    rows = await server.audit_rows("application_submitted")
    assert [json.loads(r.detail).get("conflict") for r in rows] == [None, "already_pending"]


async def test_a_taken_name_gets_the_same_answer_as_a_free_one(server: LiveServer) -> None:
    """409 "already taken" told anyone which accounts exist."""
    await server.make_user("alice")
    async with server.client() as client:
        taken = await _apply(client, username="Alice")
        free = await _apply(client, username="alicia", email="alicia@example.org")
    assert taken.status_code == free.status_code == 200
    assert _without_reference(taken) == _without_reference(free)
    assert "already taken" not in taken.text
    assert await _stored(server) == 2
    rows = await server.audit_rows("application_submitted")
    assert [json.loads(r.detail).get("conflict") for r in rows] == ["name_taken", None]


async def test_a_cyrillic_lookalike_is_refused_not_stored(server: LiveServer) -> None:
    async with server.client() as client:
        assert (await _apply(client)).status_code == 200
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
        assert accepted.status_code == 200
    async with server.client() as admin:
        await login(admin, "root")
        queue = await admin.get("/admin/applications")
    assert queue.status_code == 200
    assert script not in queue.text and "<img src=x" not in queue.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in queue.text
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in queue.text
