"""Behind one trusted proxy: the last X-Forwarded-For hop is the rate-limit key."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, csrf_of

LOGIN_LIMIT = 10


@pytest.fixture
def server_settings() -> dict[str, Any]:
    return {"trusted_hops": 1}


async def _attempt(client: httpx.AsyncClient, token: str, forwarded: str) -> int:
    response = await client.post("/login", data={"username": "nobody", "password": "wrong",
                                                 "csrf_token": token},
                                 headers={"X-Forwarded-For": forwarded})
    return response.status_code


async def test_each_last_hop_gets_its_own_bucket(server: LiveServer) -> None:
    async with server.client() as client:
        token = await csrf_of(client)
        first = [await _attempt(client, token, "10.0.0.7") for _ in range(LOGIN_LIMIT + 1)]
        second = [await _attempt(client, token, "10.0.0.8") for _ in range(LOGIN_LIMIT + 1)]
    assert first == [401] * LOGIN_LIMIT + [429]
    assert second == [401] * LOGIN_LIMIT + [429]
    limited = await server.audit_rows("rate_limited")
    assert sorted(r.client_ip for r in limited) == ["10.0.0.7", "10.0.0.8"]


async def test_a_prepended_value_lands_in_the_real_hops_bucket(server: LiveServer) -> None:
    async with server.client() as client:
        token = await csrf_of(client)
        for n in range(LOGIN_LIMIT):
            assert await _attempt(client, token, f"spoofed-{n}, 10.0.0.7") == 401
        assert await _attempt(client, token, "spoofed, 10.0.0.7") == 429
        assert await _attempt(client, token, "10.0.0.7") == 429
        assert await _attempt(client, token, "10.0.0.7, 10.0.0.9") == 401
    failed = await server.audit_rows("login_failed")
    assert {r.client_ip for r in failed} == {"10.0.0.7", "10.0.0.9"}
