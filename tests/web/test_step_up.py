"""The step-up page, /account/confirm: a fresh proof before dangerous actions, expiring after
STREAMZY_STEP_UP_SECONDS; wrong passwords count toward the lockout; ``next`` stays on site.

(The code path, TOTP and recovery codes, is tested with id-totp's SecondFactors.)
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from streamzy.storage.models import User
from tests.conftest import TEST_PASSWORD, LiveServer, csrf_of, login
from tests.realtime.helpers import ChatClient

HIDDEN_NEXT = re.compile(r'<input type="hidden" name="next" value="([^"]*)">')


@pytest.fixture
def server_settings() -> dict[str, Any]:
    return {"trusted_hops": 1}  # each guess from its own address (X-Forwarded-For)


async def _is_admin(server: LiveServer, user_id: int) -> bool:
    async with server.services.db.unit() as db:
        return bool((await db.execute(select(User.is_admin).where(User.id == user_id)))
                    .scalar_one())


async def _grant(client: httpx.AsyncClient, server: LiveServer, user_id: int, token: str,
                 action: str = "grant_admin") -> httpx.Response:
    return await client.post(f"/admin/users/{user_id}",
                             data={"action": action, "csrf_token": token},
                             headers={"Referer": server.url + "/admin/users"})


async def _confirm(client: httpx.AsyncClient, token: str, password: str,
                   next_page: str = "/admin/users", address: str = "10.9.0.1") -> httpx.Response:
    return await client.post("/account/confirm", data={
        "password": password, "next": next_page, "csrf_token": token},
        headers={"X-Forwarded-For": address})


async def test_a_dangerous_action_waits_for_the_step_up_and_it_expires(
        server: LiveServer) -> None:
    root = await server.make_user("root", admin=True)
    bob = await server.make_user("bob")
    seconds = server.services.settings.step_up_seconds
    async with server.client() as admin:
        assert (await login(admin, "root")).status_code == 302
        token = await csrf_of(admin, "/admin/users")
        # A fresh sign-in is a proof: no step-up page right after it.
        assert (await _grant(admin, server, bob.id, token)).status_code == 302
        assert await _is_admin(server, bob.id)
        server.clock.advance(seconds + 1)
        refused = await _grant(admin, server, bob.id, token, "revoke_admin")
        assert refused.status_code == 303
        assert refused.headers["location"] == "/account/confirm?next=/admin/users"
        assert await _is_admin(server, bob.id)  # nothing happened
        page = await admin.get(refused.headers["location"])
        assert page.status_code == 200 and 'name="password"' in page.text
        assert HIDDEN_NEXT.findall(page.text) == ["/admin/users"]
        assert 'name="code"' not in page.text  # no TOTP or recovery codes on this account
        proved = await _confirm(admin, token, TEST_PASSWORD)
        assert proved.status_code == 303 and proved.headers["location"] == "/admin/users"
        assert (await _grant(admin, server, bob.id, token, "revoke_admin")).status_code == 302
        assert not await _is_admin(server, bob.id)
        server.clock.advance(seconds - 1)  # still inside the window
        assert (await _grant(admin, server, bob.id, token)).status_code == 302
        server.clock.advance(2)  # past it
        again = await _grant(admin, server, bob.id, token, "revoke_admin")
        assert again.status_code == 303 and again.headers["location"].startswith(
            "/account/confirm?next=")
        as_json = await admin.post(f"/admin/users/{bob.id}", headers={
            "Accept": "application/json"}, data={"action": "revoke_admin", "csrf_token": token})
        assert as_json.status_code == 403 and as_json.json()["code"] == "step_up_required"
    passed = await server.audit_rows("step_up_passed")
    assert [(r.user_id, json.loads(r.detail)) for r in passed] == [
        (root.id, {"method": "password"})]
    assert await server.audit_rows("step_up_failed") == []


async def test_signing_in_again_counts_as_a_step_up(server: LiveServer) -> None:
    await server.make_user("root", admin=True)
    bob = await server.make_user("bob")
    async with server.client() as admin:
        assert (await login(admin, "root")).status_code == 302
        server.clock.advance(server.services.settings.step_up_seconds + 1)
        token = await csrf_of(admin, "/admin/users")
        assert (await _grant(admin, server, bob.id, token)).status_code == 303
        assert (await login(admin, "root")).status_code == 302  # a new session, proved now
        token = await csrf_of(admin, "/admin/users")
        assert (await _grant(admin, server, bob.id, token)).status_code == 302
    assert await _is_admin(server, bob.id)


async def test_wrong_passwords_on_the_step_up_page_lock_the_account_and_end_its_sessions(
        server: LiveServer) -> None:
    await server.make_user("root", admin=True)
    root = await server.services.accounts.by_username("root")
    assert root is not None
    async with server.client() as admin, server.client() as other:
        assert (await login(admin, "root")).status_code == 302
        assert (await login(other, "root")).status_code == 302
        socket = ChatClient(server, cookie=str(other.cookies["streamzy_session"]))
        await socket.connect()
        token = await csrf_of(admin, "/admin/users")
        answers = [await _confirm(admin, token, f"guess {i}", address=f"10.9.1.{i}")
                   for i in range(1, 5)]
        assert [a.status_code for a in answers] == [400] * 4
        assert all("not correct" in a.text for a in answers)
        locking = await _confirm(admin, token, "guess 5", address="10.9.1.5")
        assert locking.status_code == 302
        assert locking.headers["location"] == "/login?reason=locked"
        assert (await admin.get("/admin/users")).status_code == 302  # signed out
        assert (await other.get("/account")).status_code == 302  # every session ended
        assert await socket.end_reason() == "locked"  # and its live socket dropped
        await socket.close()
        assert (await login(admin, "root")).status_code == 401  # locked, right password
    failed = await server.audit_rows("step_up_failed")
    assert [json.loads(r.detail) for r in failed] == [
        {"method": "password", "reason": "wrong_password", "failures": n} for n in range(1, 6)]
    locked = await server.audit_rows("account_locked")
    assert [json.loads(r.detail) for r in locked] == [
        {"seconds": server.services.settings.lockout_seconds, "via": "step_up",
         "sessions_ended": 2}]
    assert await server.audit_rows("step_up_passed") == []


async def test_the_step_up_page_refuses_while_the_account_is_locked(
        server: LiveServer) -> None:
    await server.make_user("root", admin=True)
    async with server.client() as admin, server.client() as guesser:
        assert (await login(admin, "root")).status_code == 302
        token = await csrf_of(admin, "/admin/users")
        for i in range(server.services.settings.lockout_threshold):  # guesses elsewhere
            await login(guesser, "root", f"wrong {i}")
        refused = await _confirm(admin, token, TEST_PASSWORD)
        assert refused.status_code == 403 and "locked" in refused.text
        assert (await admin.get("/account")).status_code == 200  # not its guesses: kept
    rows = await server.audit_rows("step_up_failed")
    assert [json.loads(r.detail) for r in rows] == [{"method": "password", "reason": "locked"}]


@pytest.mark.parametrize("target", [
    "//evil.example/x", "https://evil.example/", "/\\evil.example", "/\t/evil.example",
    "javascript:alert(1)", "evil.example", "/ok/\u00e9",
])
async def test_next_stays_on_this_site(server: LiveServer, target: str) -> None:
    await server.make_user("root", admin=True)
    async with server.client() as admin:
        assert (await login(admin, "root")).status_code == 302
        page = await admin.get("/account/confirm", params={"next": target})
        assert HIDDEN_NEXT.findall(page.text) == ["/"]
        token = await csrf_of(admin, "/account")
        proved = await _confirm(admin, token, TEST_PASSWORD, next_page=target)
        assert proved.status_code == 303 and proved.headers["location"] == "/"


async def test_a_same_site_next_keeps_its_query(server: LiveServer) -> None:
    await server.make_user("root", admin=True)
    async with server.client() as admin:
        assert (await login(admin, "root")).status_code == 302
        token = await csrf_of(admin, "/account")
        proved = await _confirm(admin, token, TEST_PASSWORD, next_page="/admin/audit?format=csv")
        assert proved.headers["location"] == "/admin/audit?format=csv"
        export = await admin.get("/admin/audit?format=csv")
        assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")


async def test_malformed_step_up_answers_are_refused_cleanly(server: LiveServer) -> None:
    await server.make_user("root", admin=True)
    async with server.client() as anonymous:
        page = await anonymous.get("/account/confirm")
        assert page.status_code == 302 and page.headers["location"].startswith("/login")
    async with server.client() as admin:
        assert (await login(admin, "root")).status_code == 302
        token = await csrf_of(admin, "/account")
        no_csrf = await admin.post("/account/confirm", data={"password": TEST_PASSWORD})
        assert no_csrf.status_code == 403
        neither = await admin.post("/account/confirm", data={"csrf_token": token})
        both = await admin.post("/account/confirm", data={
            "password": TEST_PASSWORD, "code": "123456", "csrf_token": token})
        huge = await admin.post("/account/confirm", data={
            "password": "x" * 5000, "csrf_token": token})
        extra = await admin.post("/account/confirm", data={
            "password": TEST_PASSWORD, "admin": "1", "csrf_token": token})
        for answer in (neither, both, huge, extra):
            assert answer.status_code == 400, answer.text
            assert "Traceback" not in answer.text
        as_json = await admin.post("/account/confirm", data={"csrf_token": token},
                                   headers={"Accept": "application/json"})
        assert as_json.status_code == 400
    assert await server.audit_rows("step_up_passed") == []
    assert await server.audit_rows("account_locked") == []


async def _confirm_code(client: httpx.AsyncClient, token: str, code: str,
                        address: str) -> httpx.Response:
    return await client.post("/account/confirm", data={
        "code": code, "next": "/admin/users", "csrf_token": token},
        headers={"X-Forwarded-For": address})


async def test_a_second_factor_code_is_a_step_up_once(server: LiveServer) -> None:
    from tests.totp import code_at, enrol
    root = await server.make_user("root", admin=True)
    bob = await server.make_user("bob")
    seconds = server.services.settings.step_up_seconds
    async with server.client() as admin:
        assert (await login(admin, "root")).status_code == 302
        secret, recovery = await enrol(server.services, root)
        token = await csrf_of(admin, "/admin/users")
        server.clock.advance(seconds + 1)
        assert (await _grant(admin, server, bob.id, token)).status_code == 303
        page = await admin.get("/account/confirm?next=/admin/users")
        assert 'name="code"' in page.text  # the account has a factor: the code is offered
        code = code_at(secret, server.clock)
        assert (await _confirm_code(admin, token, code, "10.9.2.1")).status_code == 303
        assert (await _grant(admin, server, bob.id, token)).status_code == 302
        assert await _is_admin(server, bob.id)
        server.clock.advance(seconds + 1)
        # The same code again (still inside its +-1 step window): refused as a replay.
        server.clock.advance(-seconds - 1 + 20)
        replay = await _confirm_code(admin, token, code, "10.9.2.2")
        assert replay.status_code == 400
        server.clock.advance(seconds)
        # A recovery code works once as a step-up.
        assert (await _confirm_code(admin, token, recovery[0], "10.9.2.3")).status_code == 303
        assert (await _grant(admin, server, bob.id, token, "revoke_admin")).status_code == 302
        server.clock.advance(seconds + 1)
        again = await _confirm_code(admin, token, recovery[0], "10.9.2.4")
        assert again.status_code == 400
    passed = [json.loads(r.detail) for r in await server.audit_rows("step_up_passed")]
    assert passed == [{"method": "totp"}, {"method": "recovery"}]
    failed = [json.loads(r.detail)["reason"] for r in await server.audit_rows("step_up_failed")]
    assert failed == ["replayed", "wrong_code"]


async def test_wrong_codes_on_the_step_up_page_lock_the_account(server: LiveServer) -> None:
    from tests.totp import code_at, enrol
    root = await server.make_user("root", admin=True)
    async with server.client() as admin:
        assert (await login(admin, "root")).status_code == 302
        secret, _ = await enrol(server.services, root)
        # A code from far outside the +-1 step window: wrong for certain.
        wrong = code_at(secret, server.clock, steps=1000)
        if wrong in {code_at(secret, server.clock, s) for s in (-1, 0, 1)}:
            wrong = code_at(secret, server.clock, steps=1001)
        token = await csrf_of(admin, "/admin/users")
        statuses = [(await _confirm_code(admin, token, wrong, f"10.9.3.{i}")).status_code
                    for i in range(1, 6)]
        # Four wrong codes answered on the page; the fifth locks and signs out.
        assert statuses[:4] == [400] * 4 and statuses[4] == 302
        assert (await admin.get("/admin/users")).status_code == 302
    assert len(await server.audit_rows("account_locked")) == 1
