"""Export downloads over real HTTP: one's own messages, an admin's room export, and the
attacks: another person's messages (IDOR), a room by a non-admin, a forged POST, a flood."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import LiveServer, csrf_of, login, post_form
from tests.storage.backup_fixtures import SECRET_TEXTS, Population, populate


@pytest.fixture
def server_settings() -> dict[str, Any]:
    return {"rate_exports": "4/h"}


async def _people(server: LiveServer) -> Population:
    return await populate(server.services)


async def test_a_person_downloads_their_own_messages(server: LiveServer) -> None:
    people = await _people(server)
    async with server.client() as bob:
        await login(bob, "bob")
        # Naming someone else changes nothing: the export is always the signed-in person's.
        response = await post_form(bob, "/account/export",
                                   {"user_id": str(people.alice.user_id), "user": "alice"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["content-disposition"] == (
        'attachment; filename="streamzy-bob-messages.json"')
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["export"]["user"] == "bob"
    assert [m["text"] for m in body["messages"]] == [SECRET_TEXTS[1], SECRET_TEXTS[3]]
    for text in (SECRET_TEXTS[0], SECRET_TEXTS[2]):
        assert text not in response.text
    rows = await server.audit_rows("data_exported")
    assert len(rows) == 1 and rows[0].user_id == people.bob.user_id
    assert rows[0].client_ip == "127.0.0.1"
    assert json.loads(rows[0].detail)["count"] == 2


async def test_an_admin_downloads_a_room(server: LiveServer) -> None:
    people = await _people(server)
    async with server.client() as alice:
        await login(alice, "alice")
        page = await alice.get("/admin/rooms")
        assert f'action="/admin/rooms/{people.room_id}/export"' in page.text
        response = await post_form(alice, f"/admin/rooms/{people.room_id}/export",
                                   page="/admin/rooms")
        assert response.status_code == 200
        assert 'filename="streamzy-room-general.json"' in response.headers["content-disposition"]
        body = response.json()
        assert [(m["sender"], m["text"]) for m in body["messages"]] == [
            ("alice", SECRET_TEXTS[0]), ("bob", SECRET_TEXTS[1]), ("bob", SECRET_TEXTS[3])]
        dm = await post_form(alice, f"/admin/rooms/{people.dm_id}/export", page="/admin/rooms")
        assert dm.status_code == 403 and SECRET_TEXTS[2] not in dm.text
    rows = await server.audit_rows("data_exported")
    assert [json.loads(r.detail)["room_id"] for r in rows] == [people.room_id]


async def test_a_member_cannot_export_a_room(server: LiveServer) -> None:
    people = await _people(server)
    async with server.client() as bob:
        await login(bob, "bob")
        response = await post_form(bob, f"/admin/rooms/{people.room_id}/export")
    assert response.status_code == 403
    assert SECRET_TEXTS[0] not in response.text
    assert await server.audit_rows("data_exported") == []


async def test_exports_need_a_session_a_post_and_the_csrf_token(server: LiveServer) -> None:
    people = await _people(server)
    async with server.client() as anonymous:
        token = await csrf_of(anonymous, "/login")
        response = await anonymous.post("/account/export", data={"csrf_token": token})
        assert response.status_code in (302, 401, 403)
        assert SECRET_TEXTS[1] not in response.text
    async with server.client() as bob:
        await login(bob, "bob")
        assert (await bob.get("/account/export")).status_code == 405
        forged = await bob.post("/account/export", data={},
                                headers={"Origin": "https://evil.example"})
        assert forged.status_code == 403
        no_token = await bob.post("/account/export", data={"csrf_token": "x" * 40})
        assert no_token.status_code == 403
    assert await server.audit_rows("data_exported") == []
    assert people.bob.user_id


async def test_exports_are_rate_limited(server: LiveServer) -> None:
    await _people(server)
    async with server.client() as bob:
        await login(bob, "bob")
        codes = [(await post_form(bob, "/account/export")).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 200, 429]
    assert len(await server.audit_rows("data_exported")) == 4
    assert len(await server.audit_rows("rate_limited")) == 1
