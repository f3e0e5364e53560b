"""The second-factor policy (off, admins, everyone) and forced enrolment on every edge:
pages redirect to enrolment, JSON gets 403 second_factor_required, the API stays bot-only,
sockets are refused, and sockets already connected drop when the policy starts to cover
them. Accounts with a factor, and those the policy does not cover, are not affected."""

from __future__ import annotations

import json

import httpx
import pytest
import socketio

from streamzy.services.errors import Forbidden, Invalid
from streamzy.storage import system_state
from streamzy.storage.models import User
from tests.conftest import CLIENT, TEST_PASSWORD, LiveServer, csrf_of
from tests.realtime.helpers import ChatClient
from tests.totp import FactorLogins

ENROL = "/account/second-factor?required=1"
PAGES = ["/rooms", "/account", "/account/password", "/admin/users", "/admin/security",
         "/admin/keys"]
NEW_PASSWORD = "orange lamp river 42"


@pytest.fixture
def logins(server: LiveServer) -> FactorLogins:
    return FactorLogins(server.clock)


async def has_factor(server: LiveServer, logins: FactorLogins, username: str, *,
                     admin: bool = False) -> User:
    """An account with TOTP set up; ``logins.login`` passes its second step."""
    return await logins.enrol(server.services, await server.make_user(username, admin=admin))


async def refusal(server: LiveServer, client: httpx.AsyncClient) -> str:
    socket = ChatClient(server, cookie=str(client.cookies["streamzy_session"]))
    with pytest.raises(socketio.exceptions.ConnectionError):
        await socket.connect()
    return str(socket.connect_errors)


async def connects(server: LiveServer, client: httpx.AsyncClient) -> ChatClient:
    socket = ChatClient(server, cookie=str(client.cookies["streamzy_session"]))
    await socket.connect()
    return socket


async def assert_must_enrol(server: LiveServer, client: httpx.AsyncClient) -> None:
    """Every edge refuses this browser until it enrols; signing out still works."""
    for page in PAGES:
        answer = await client.get(page)
        assert answer.status_code == 302, page
        assert answer.headers["location"] == ENROL, page
    # The confirm page is part of enrolling (adding a passkey wants a fresh proof).
    assert (await client.get("/account/confirm?next=/account/passkeys")).status_code == 200
    as_json = await client.get("/admin/users", headers={"Accept": "application/json"})
    assert as_json.status_code == 403 and as_json.json()["code"] == "second_factor_required"
    api = await client.get("/api/v1/rooms")  # bot tokens only: the cookie counts for nothing
    assert api.status_code == 401
    assert "second_factor_required" in await refusal(server, client)


async def sign_out(client: httpx.AsyncClient) -> None:
    # No page renders while enrolment is owed, so the token comes from the session cookie's
    # own page: the sign-in page carries the same session's CSRF token.
    token = await csrf_of(client, "/login")
    out = await client.post("/logout", data={"csrf_token": token})
    assert out.status_code == 302 and out.headers["location"] == "/login?reason=logged_out"
    assert (await client.get("/account")).headers["location"].startswith("/login")


async def test_admins_policy_gates_admins_without_a_factor_on_every_edge(
        server: LiveServer, logins: FactorLogins) -> None:
    carol = await has_factor(server, logins, "carol", admin=True)
    root = await server.make_user("root", admin=True)
    await server.make_user("mia")
    async with server.client() as setter, server.client() as admin, \
            server.client() as member:
        for client, name in ((setter, "carol"), (admin, "root"), (member, "mia")):
            assert (await logins.login(client, name)).status_code == 302
        admin_socket = await connects(server, admin)
        member_socket = await connects(server, member)
        page = await setter.get("/admin/security")
        assert page.status_code == 200 and 'id="policy-off" checked' in page.text
        token = await csrf_of(setter, "/admin/security")
        changed = await setter.post("/admin/security/policy",
                                    data={"policy": "admins", "csrf_token": token})
        assert changed.status_code == 302
        assert changed.headers["location"] == "/admin/security?done=policy&ended=1"
        # The admin without a factor was signed out: the live socket dropped at once.
        assert await admin_socket.end_reason() == "second_factor_required"
        assert (await admin.get("/account")).headers["location"].startswith("/login")
        # Signing in again leads nowhere but enrolment, on every edge.
        assert (await logins.login(admin, "root")).status_code == 302
        await assert_must_enrol(server, admin)
        await sign_out(admin)
        # A member is not covered; an admin with a factor is not affected.
        assert member_socket.sio.connected and member_socket.ended == []
        assert (await member.get("/rooms")).status_code == 200
        for client in (setter, member):
            assert (await client.get("/account")).status_code == 200
            await (await connects(server, client)).close()
        notice = await setter.get("/admin/security?done=policy&ended=1")
        assert "1 session(s)" in notice.text and "Required for admins" in notice.text
        await member_socket.close()
    rows = await server.audit_rows("second_factor_policy_changed")
    assert [(r.user_id, json.loads(r.detail)) for r in rows] == [
        (carol.id, {"policy": "admins", "previous": "off", "sessions_ended": 1})]
    assert root.id not in {r.user_id for r in await server.audit_rows("step_up_passed")}


async def test_everyone_policy_gates_members_too(server: LiveServer, logins: FactorLogins) -> None:
    carol = await has_factor(server, logins, "carol", admin=True)
    await has_factor(server, logins, "dave")
    await server.make_user("mia")
    async with server.client() as member, server.client() as covered:
        assert (await logins.login(member, "mia")).status_code == 302
        assert (await logins.login(covered, "dave")).status_code == 302
        member_socket = await connects(server, member)
        covered_socket = await connects(server, covered)
        ended = await server.services.second_factor_admin.set_policy(carol.id, "everyone",
                                                                     CLIENT)
        assert ended == 1
        assert await member_socket.end_reason() == "second_factor_required"
        assert (await logins.login(member, "mia")).status_code == 302
        await assert_must_enrol(server, member)
        assert covered_socket.sio.connected  # has a factor: untouched
        assert (await covered.get("/rooms")).status_code == 200
        await covered_socket.close()
        # Loosening again ends nothing, and the member is free at once (no new sign-in).
        assert await server.services.second_factor_admin.set_policy(
            carol.id, "admins", CLIENT) == 0
        assert (await member.get("/rooms")).status_code == 200
        await (await connects(server, member)).close()
    rows = await server.audit_rows("second_factor_policy_changed")
    assert [json.loads(r.detail) for r in rows] == [
        {"policy": "everyone", "previous": "off", "sessions_ended": 1},
        {"policy": "admins", "previous": "everyone", "sessions_ended": 0}]


async def test_the_owed_password_change_comes_before_enrolment(
        server: LiveServer, logins: FactorLogins) -> None:
    async with server.services.db.unit() as db:
        await system_state.write(db, system_state.SECOND_FACTOR_POLICY, "everyone",
                                 server.clock.now())
    await server.make_user("newbie", must_change=True)
    async with server.client() as client:
        signed_in = await logins.login(client, "newbie")
        assert signed_in.headers["location"] == "/account/password?first=1"
        for page in ("/rooms", "/account", "/admin/users"):
            assert (await client.get(page)).headers["location"] == "/account/password?first=1"
        assert (await client.get("/account/password?first=1")).status_code == 200
        assert "password_change_required" in await refusal(server, client)
        token = await csrf_of(client, "/account/password")
        changed = await client.post("/account/password", data={
            "current_password": TEST_PASSWORD, "new_password": NEW_PASSWORD,
            "confirm_password": NEW_PASSWORD, "csrf_token": token})
        assert changed.status_code == 302
        # Then enrolment is owed, everywhere.
        assert (await client.get(changed.headers["location"])).headers["location"] == ENROL
        await assert_must_enrol(server, client)


async def test_requiring_a_factor_needs_your_own_first(
        server: LiveServer, logins: FactorLogins) -> None:
    root = await server.make_user("root", admin=True)
    async with server.client() as admin:
        assert (await logins.login(admin, "root")).status_code == 302
        token = await csrf_of(admin, "/admin/security")
        for policy in ("admins", "everyone"):
            refused = await admin.post("/admin/security/policy",
                                       data={"policy": policy, "csrf_token": token})
            assert refused.status_code == 403
            assert "Set up your own second factor" in refused.text
        bad = await admin.post("/admin/security/policy",
                               data={"policy": "nobody", "csrf_token": token})
        assert bad.status_code == 400
        off = await admin.post("/admin/security/policy",
                               data={"policy": "off", "csrf_token": token})
        assert off.status_code == 302
        assert (await admin.get("/rooms")).status_code == 200
    assert await server.services.second_factor_admin.policy() == "off"
    with pytest.raises(Forbidden):
        await server.services.second_factor_admin.set_policy(root.id, "admins", CLIENT)
    with pytest.raises(Invalid):
        await server.services.second_factor_admin.set_policy(root.id, "sometimes", CLIENT)
    member = await has_factor(server, logins, "mia")
    with pytest.raises(Forbidden):  # only admins set it, whatever the edge
        await server.services.second_factor_admin.set_policy(member.id, "off", CLIENT)
    rows = await server.audit_rows("second_factor_policy_changed")
    assert [json.loads(r.detail)["policy"] for r in rows] == ["off"]


async def test_coverage_counts_people_not_bots_or_disabled_accounts(
        server: LiveServer, logins: FactorLogins) -> None:
    root = await has_factor(server, logins, "root", admin=True)
    await server.make_user("zed", admin=True)
    await has_factor(server, logins, "dave")
    await server.make_user("mia")
    gone = await server.make_user("gone")
    await server.services.accounts.set_active(root.id, gone.id, False, CLIENT)
    await server.services.bots.create(root.id, "deploy-bot", "Deploy", [], CLIENT)
    coverage = await server.services.second_factor_admin.coverage()
    assert (coverage.policy, coverage.admins_with, coverage.admins_without,
            coverage.members_with, coverage.members_without) == ("off", 1, 1, 1, 1)
    assert (coverage.everyone_with, coverage.everyone_without) == (2, 2)
    assert [(p.username, p.is_admin) for p in coverage.missing] == [("zed", True),
                                                                    ("mia", False)]
    assert coverage.required_without == 0
    await server.services.second_factor_admin.set_policy(root.id, "admins", CLIENT)
    assert (await server.services.second_factor_admin.coverage()).required_without == 1
    async with server.client() as admin, server.client() as member:
        assert (await logins.login(admin, "root")).status_code == 302
        page = await admin.get("/admin/security")
        assert page.status_code == 200
        assert 'data-username="zed"' in page.text and 'data-username="mia"' in page.text
        assert 'data-username="dave"' not in page.text
        assert "1 account(s) must set up a second factor" in page.text
        assert 'href="/admin/security"' in page.text  # in the console's navigation
        assert (await logins.login(member, "dave")).status_code == 302
        assert (await member.get("/admin/security")).status_code == 403
