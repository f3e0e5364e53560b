"""Rate limits per trusted client address: login, applications, audit once per minute."""

from __future__ import annotations

import httpx

from tests.conftest import LiveServer, csrf_of

LOGIN_LIMIT = 10
APPLY_LIMIT = 5


async def _login_attempt(client: httpx.AsyncClient, token: str,
                         headers: dict[str, str] | None = None) -> httpx.Response:
    return await client.post("/login", data={"username": "nobody", "password": "wrong guess",
                                             "csrf_token": token}, headers=headers or {})


async def _apply(client: httpx.AsyncClient, token: str, n: int) -> httpx.Response:
    return await client.post("/apply", data={
        "username": f"applicant{n}", "display_name": f"Applicant {n}",
        "email": f"a{n}@example.org", "reason": "I would like to join the team chat.",
        "csrf_token": token})


async def test_login_is_limited_to_ten_per_five_minutes(server: LiveServer) -> None:
    async with server.client() as client:
        token = await csrf_of(client)
        for _ in range(LOGIN_LIMIT):
            assert (await _login_attempt(client, token)).status_code == 401
        refused = await _login_attempt(client, token)
        assert refused.status_code == 429
        retry_after = int(refused.headers["Retry-After"])
        assert 1 <= retry_after <= 300
        for _ in range(4):  # 15 attempts in all, still inside the same minute
            assert (await _login_attempt(client, token)).status_code == 429
        rows = await server.audit_rows("rate_limited")
        assert len(rows) == 1
        assert '"limit": "login"' in rows[0].detail and rows[0].client_ip == "127.0.0.1"
        assert len(await server.audit_rows("login_failed")) == LOGIN_LIMIT  # refusals never
        # reach the password check
        server.clock.advance(retry_after)
        assert (await _login_attempt(client, token)).status_code == 401
        assert (await _login_attempt(client, token)).status_code == 429
    assert len(await server.audit_rows("rate_limited")) == 1


async def test_refusals_are_audited_again_after_a_minute(server: LiveServer) -> None:
    async with server.client() as client:
        token = await csrf_of(client)
        for _ in range(LOGIN_LIMIT):
            await _login_attempt(client, token)
        assert (await _login_attempt(client, token)).status_code == 429
        server.clock.advance(5)
        assert (await _login_attempt(client, token)).status_code == 429
        assert len(await server.audit_rows("rate_limited")) == 1
        server.clock.advance(60)
        for _ in range(3):  # 65 s earned two attempts back (one per 30 s); the third is refused
            await _login_attempt(client, token)
    rows = [r.detail for r in await server.audit_rows("rate_limited")]
    # the first window's row, its count of repeats when it ended, the second window's row
    assert len(rows) == 3 and '"repeated": 1' in rows[1] and "repeated" not in rows[2]


async def test_rotating_forwarded_for_does_not_escape_the_limit(server: LiveServer) -> None:
    async with server.client() as client:
        token = await csrf_of(client)
        statuses = [
            (await _login_attempt(client, token, {"X-Forwarded-For": f"198.51.100.{n}"})
             ).status_code
            for n in range(LOGIN_LIMIT + 3)
        ]
    assert statuses == [401] * LOGIN_LIMIT + [429] * 3
    assert {r.client_ip for r in await server.audit_rows()} == {"127.0.0.1"}


async def test_applications_are_limited_to_five_per_five_minutes(server: LiveServer) -> None:
    async with server.client() as client:
        token = await csrf_of(client, "/apply")
        for n in range(APPLY_LIMIT):
            assert (await _apply(client, token, n)).status_code == 200
        refused = await _apply(client, token, APPLY_LIMIT)
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
    assert len(await server.services.applications.pending()) == APPLY_LIMIT
    rows = await server.audit_rows("rate_limited")
    assert len(rows) == 1 and '"limit": "apply"' in rows[0].detail


async def test_login_and_apply_have_separate_buckets(server: LiveServer) -> None:
    async with server.client() as client:
        token = await csrf_of(client)
        for _ in range(LOGIN_LIMIT + 1):
            await _login_attempt(client, token)
        assert (await _login_attempt(client, token)).status_code == 429
        assert (await _apply(client, token, 1)).status_code == 200
