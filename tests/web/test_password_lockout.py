"""Wrong current passwords on /account/password count toward the login lockout.

A stolen session must not become an unlimited password oracle: the per-address limit
alone let 12 addresses make 12 guesses (all 400, never locked).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conftest import TEST_PASSWORD, LiveServer, csrf_of, login

NEW = "orange lamp river 42"
LOCKOUT = 15 * 60


@pytest.fixture
def server_settings() -> dict[str, Any]:
    return {"trusted_hops": 1}  # each guess from its own address (X-Forwarded-For)


async def _change(client: httpx.AsyncClient, current: str, address: str,
                  token: str) -> httpx.Response:
    return await client.post("/account/password", data={
        "current_password": current, "new_password": NEW, "confirm_password": NEW,
        "csrf_token": token}, headers={"X-Forwarded-For": address})


async def test_guessing_the_current_password_locks_the_account_and_ends_its_sessions(
        server: LiveServer) -> None:
    user = await server.make_user("alice")
    async with server.client() as stolen, server.client() as other:
        assert (await login(stolen, "alice")).status_code == 302
        assert (await login(other, "alice")).status_code == 302
        token = await csrf_of(stolen, "/account/password")
        answers = [await _change(stolen, f"guess number {i}", f"10.0.0.{i}", token)
                   for i in range(1, 13)]
        assert [a.status_code for a in answers[:4]] == [400] * 4
        assert all("not correct" in a.text for a in answers[:4])
        # The fifth wrong guess locks the account and ends every session of it.
        assert answers[4].status_code == 302
        assert answers[4].headers["location"] == "/login?reason=locked"
        assert all(a.status_code == 302 and a.headers["location"].startswith("/login")
                   for a in answers[5:])
        assert (await stolen.get("/account")).status_code == 302
        assert (await other.get("/account")).status_code == 302
    async with server.client() as owner:
        assert (await login(owner, "alice")).status_code == 401  # locked, right password
        server.clock.advance(LOCKOUT - 60)
        assert (await login(owner, "alice")).status_code == 401
        server.clock.advance(61)
        assert (await login(owner, "alice")).status_code == 302
    failed = await server.audit_rows("password_change_failed")
    assert [json.loads(r.detail) for r in failed] == [
        {"reason": "wrong_current", "failures": n} for n in range(1, 6)]
    assert {r.client_ip for r in failed} == {f"10.0.0.{i}" for i in range(1, 6)}
    locked = await server.audit_rows("account_locked")
    assert len(locked) == 1 and locked[0].user_id == user.id
    assert json.loads(locked[0].detail) == {"seconds": LOCKOUT, "via": "password_change",
                                            "sessions_ended": 2}
    assert await server.audit_rows("password_changed") == []


async def test_no_password_change_while_the_account_is_locked(server: LiveServer) -> None:
    await server.make_user("bob")
    async with server.client() as owner, server.client() as guesser:
        assert (await login(owner, "bob")).status_code == 302
        token = await csrf_of(owner, "/account/password")
        for i in range(5):  # someone else guesses at the sign-in form
            await login(guesser, "bob", f"wrong {i}")
        refused = await _change(owner, TEST_PASSWORD, "10.0.1.1", token)
        assert refused.status_code == 403 and "locked" in refused.text
        assert (await owner.get("/account")).status_code == 200  # not ended: not its guesses
        server.clock.advance(LOCKOUT + 1)
        changed = await _change(owner, TEST_PASSWORD, "10.0.1.1", token)
        assert changed.status_code == 302 and changed.headers["location"] == "/account?changed=1"
    rows = await server.audit_rows("password_change_failed")
    assert [json.loads(r.detail) for r in rows] == [{"reason": "locked"}]


async def test_a_successful_change_clears_earlier_failures(server: LiveServer) -> None:
    await server.make_user("carol")
    async with server.client() as client:
        assert (await login(client, "carol")).status_code == 302
        token = await csrf_of(client, "/account/password")
        for i in range(4):
            assert (await _change(client, f"wrong {i}", f"10.0.2.{i}", token)).status_code == 400
        assert (await _change(client, TEST_PASSWORD, "10.0.2.9", token)).status_code == 302
    async with server.client() as client:
        for i in range(4):  # 4 + 4 failures, never 5 in a row
            assert (await login(client, "carol", f"wrong again {i}")).status_code == 401
        assert (await login(client, "carol", NEW)).status_code == 302
    assert await server.audit_rows("account_locked") == []
