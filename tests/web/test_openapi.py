"""/openapi.json describes what the API really answers, and the API sends RateLimit-* fields."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from streamzy.guards.context import SYSTEM
from tests.conftest import LiveServer
from tests.realtime.helpers import make_room

API_LIMIT = 100  # STREAMZY_RATE_API: 100 per hour
RATE_FIELDS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            found.add(node["$ref"])
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


async def _document(server: LiveServer) -> dict[str, Any]:
    async with server.client() as http:
        response = await http.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


async def _bot(server: LiveServer) -> tuple[int, dict[str, str]]:
    room = await make_room(server, "general")
    admin = await server.services.accounts.by_username("roomadmin")
    _, token = await server.services.bots.create(admin.id, "poster", "Poster", [room], SYSTEM)
    return room, {"Authorization": f"Bearer {token}"}


async def test_every_component_is_used_and_every_status_has_a_schema(server: LiveServer) -> None:
    document = await _document(server)
    used = _refs(document["paths"])
    schemas = document["components"]["schemas"]
    while True:  # follow references inside the components too
        more = used.union(*(_refs(schemas.get(n.rsplit("/", 1)[-1], {})) for n in used))
        if more == used:
            break
        used = more
    assert {f"#/components/schemas/{name}" for name in schemas} <= used
    expected = {
        ("/api/v1/rooms", "get"): {"200", "401", "429", "503"},
        ("/api/v1/rooms/{room_id}/messages", "get"):
            {"200", "400", "401", "403", "404", "429", "503"},
        ("/api/v1/rooms/{room_id}/messages", "post"):
            {"200", "201", "400", "401", "403", "404", "409", "413", "415", "429", "503"},
        ("/api/v1/rooms/{room_id}/messages/{message_id}", "patch"):
            {"200", "400", "401", "403", "404", "413", "415", "429", "503"},
        ("/api/v1/rooms/{room_id}/messages/{message_id}", "delete"):
            {"200", "400", "401", "403", "404", "429", "503"},
        ("/api/v1/rooms/{room_id}/messages/{message_id}/reactions", "post"):
            {"200", "400", "401", "403", "404", "413", "415", "429", "503"},
    }
    for (path, method), statuses in expected.items():
        responses = document["paths"][path][method]["responses"]
        assert set(responses) == statuses, (path, method)
        for status, answer in responses.items():
            assert answer["content"]["application/json"]["schema"]["$ref"], (path, status)
            assert set(RATE_FIELDS) <= set(answer["headers"]), (path, status)
        assert "Retry-After" in responses["429"]["headers"]
    assert "#/components/schemas/Message" in _refs(schemas["History"])
    assert "#/components/schemas/Error" in used


async def test_the_schema_states_the_servers_message_limit(server: LiveServer) -> None:
    document = await _document(server)
    text = document["components"]["schemas"]["PostMessage"]["properties"]["text"]
    assert text["maxLength"] == server.app.services.settings.message_max_chars == 4000
    room, auth = await _bot(server)
    async with server.client() as http:
        at_limit = await http.post(f"/api/v1/rooms/{room}/messages", headers=auth,
                                   json={"client_msg_id": "max", "text": "x" * 4000})
        over = await http.post(f"/api/v1/rooms/{room}/messages", headers=auth,
                               json={"client_msg_id": "over", "text": "x" * 4001})
    assert at_limit.status_code == 201
    assert over.status_code == 400


class TestConfiguredLimit:
    @pytest.fixture
    def server_settings(self) -> dict[str, Any]:
        return {"message_max_chars": 500}

    async def test_a_configured_limit_is_the_schemas_limit(self, server: LiveServer) -> None:
        document = await _document(server)
        assert document["components"]["schemas"]["PostMessage"]["properties"]["text"][
            "maxLength"] == 500


def _budget(response: httpx.Response) -> tuple[int, int, int]:
    return (int(response.headers["RateLimit-Limit"]),
            int(response.headers["RateLimit-Remaining"]),
            int(response.headers["RateLimit-Reset"]))


async def test_every_api_answer_carries_the_rate_limit_fields(server: LiveServer) -> None:
    room, auth = await _bot(server)
    async with server.client() as http:
        first = await http.get("/api/v1/rooms", headers=auth)
        assert _budget(first) == (API_LIMIT, API_LIMIT - 1, 36)
        second = await http.get(f"/api/v1/rooms/{room}/messages?limit=5", headers=auth)
        assert _budget(second) == (API_LIMIT, API_LIMIT - 2, 72)
        answers = [
            await http.get(f"/api/v1/rooms/{room + 1}/messages", headers=auth),       # 404
            await http.get(f"/api/v1/rooms/{2**64}/messages", headers=auth),          # 404
            await http.get(f"/api/v1/rooms/{room}/messages?limit=x", headers=auth),   # 400
            await http.post(f"/api/v1/rooms/{room}/messages", headers=auth,
                            content=b"not json"),                                    # 415
            await http.get("/api/v1/nothing-here", headers=auth),                     # 404
        ]
        assert [a.status_code for a in answers] == [404, 404, 400, 415, 404]
        assert [_budget(a)[1] for a in answers] == list(range(API_LIMIT - 3, API_LIMIT - 8, -1))
        anonymous = await http.get("/api/v1/rooms")  # no token: the address's own budget
        assert anonymous.status_code == 401 and _budget(anonymous)[:2] == (API_LIMIT,
                                                                          API_LIMIT - 1)
        server.clock.advance(36)  # one request's worth of budget comes back
        assert _budget(await http.get("/api/v1/rooms", headers=auth))[1] == API_LIMIT - 7
        for _ in range(API_LIMIT - 7):
            last = await http.get("/api/v1/rooms", headers=auth)
        assert last.status_code == 200 and _budget(last)[1] == 0
        refused = await http.get("/api/v1/rooms", headers=auth)
    assert refused.status_code == 429
    assert _budget(refused) == (API_LIMIT, 0, 3600)
    assert int(refused.headers["Retry-After"]) == 36
    assert json.loads(refused.text)["code"] == "rate_limited"


class TestBotMessageLimit:
    @pytest.fixture
    def server_settings(self) -> dict[str, Any]:
        return {"rate_bot_messages": "2/m"}

    async def test_the_message_limit_answer_has_retry_after(self, server: LiveServer) -> None:
        room, auth = await _bot(server)
        async with server.client() as http:
            for n in range(2):
                sent = await http.post(f"/api/v1/rooms/{room}/messages", headers=auth,
                                       json={"client_msg_id": f"m{n}", "text": "hello"})
                assert sent.status_code == 201
            refused = await http.post(f"/api/v1/rooms/{room}/messages", headers=auth,
                                      json={"client_msg_id": "m3", "text": "hello"})
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) == 30
        assert refused.json()["retry_after"] == 30.0
        assert "RateLimit-Remaining" in refused.headers
