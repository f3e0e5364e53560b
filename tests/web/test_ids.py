"""Ids in URLs stay inside the database's range: 2^63 and beyond are a 404, never a 500."""

from __future__ import annotations

import pytest
from werkzeug.routing.converters import NumberConverter

from streamzy.guards.context import SYSTEM
from streamzy.web.ids import DB_ID_MAX, DatabaseId
from tests.conftest import LiveServer, csrf_of, login
from tests.realtime.helpers import make_room

OUT_OF_RANGE = [str(2**63), str(2**64), "9" * 40, "0", "00"]


async def test_every_numeric_route_argument_is_a_bounded_database_id(server: LiveServer) -> None:
    loose = []
    for rule in server.app.quart.url_map.iter_rules():
        for name, converter in rule._converters.items():
            if isinstance(converter, NumberConverter) and not isinstance(converter, DatabaseId):
                loose.append(f"{rule.rule}: {name}")
    assert loose == []
    assert DatabaseId(server.app.quart.url_map).max == DB_ID_MAX == 2**63 - 1


@pytest.mark.parametrize("value", OUT_OF_RANGE)
async def test_admin_routes_answer_404_for_ids_the_database_cannot_hold(
        server: LiveServer, value: str) -> None:
    await server.make_user("root", admin=True)
    async with server.client() as admin:
        await login(admin, "root")
        token = await csrf_of(admin, "/admin/users")
        for path, data in ((f"/admin/users/{value}", {"action": "unlock"}),
                           (f"/admin/applications/{value}/approve", {}),
                           (f"/admin/applications/{value}/reject", {"reason": "no thanks"}),
                           (f"/admin/bots/tokens/{value}/revoke", {}),
                           (f"/admin/rooms/{value}/invite", {"username": "root"}),
                           (f"/account/sessions/{value}/revoke", {})):
            response = await admin.post(path, data={**data, "csrf_token": token})
            assert response.status_code == 404, (path, response.status_code)
        assert (await admin.get("/account")).status_code == 200  # still signed in


@pytest.mark.parametrize("value", OUT_OF_RANGE)
async def test_api_routes_answer_404_json_for_ids_the_database_cannot_hold(
        server: LiveServer, value: str) -> None:
    room = await make_room(server, "general")
    admin = await server.services.accounts.by_username("roomadmin")
    _, token = await server.services.bots.create(admin.id, "poster", "Poster", [room], SYSTEM)
    auth = {"Authorization": f"Bearer {token}"}
    async with server.client() as http:
        history = await http.get(f"/api/v1/rooms/{value}/messages", headers=auth)
        posted = await http.post(f"/api/v1/rooms/{value}/messages", headers=auth,
                                 json={"client_msg_id": "big-1", "text": "hello"})
    for response in (history, posted):
        assert response.status_code == 404
        assert response.json()["ok"] is False and response.json()["code"] == "not_found"


async def test_largest_database_id_is_an_ordinary_not_found(server: LiveServer) -> None:
    await server.make_user("root", admin=True)
    async with server.client() as admin:
        await login(admin, "root")
        token = await csrf_of(admin, "/admin/users")
        response = await admin.post(f"/admin/users/{DB_ID_MAX}",
                                    data={"action": "unlock", "csrf_token": token})
    assert response.status_code == 404


async def test_a_bot_form_with_a_room_id_out_of_range_is_refused(server: LiveServer) -> None:
    await server.make_user("root", admin=True)
    async with server.client() as admin:
        await login(admin, "root")
        token = await csrf_of(admin, "/admin/bots")
        response = await admin.post("/admin/bots", data={
            "name": "bigbot", "display_name": "Big", "rooms": str(2**63), "csrf_token": token})
    assert response.status_code == 400
    assert await server.services.accounts.by_username("bigbot") is None
