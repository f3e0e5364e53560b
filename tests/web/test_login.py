"""Sign-in: success, generic failures, lockout, timing parity, long passwords, fixation."""

from __future__ import annotations

import json

import bcrypt
import pytest

from tests.conftest import TEST_PASSWORD, LiveServer, csrf_of, login, post_form

GENERIC = "Wrong username or password"


async def test_login_success_sets_fresh_http_only_cookie(server: LiveServer) -> None:
    await server.make_user("alice")
    async with server.client() as client:
        response = await login(client, "alice")
        assert response.status_code == 302
        assert response.headers["location"] == "/"
        cookie = response.headers["set-cookie"]
        assert "streamzy_session=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        token = client.cookies["streamzy_session"]
        assert len(token) >= 86  # 64 random bytes, url-safe base64
        account = await client.get("/account")
        assert account.status_code == 200 and "alice" in account.text
    assert [r.user_id for r in await server.audit_rows("login_succeeded")]


async def test_wrong_password_and_unknown_user_get_the_same_answer(server: LiveServer) -> None:
    await server.make_user("alice")
    async with server.client() as client:
        wrong = await login(client, "alice", "not the password at all")
        unknown = await login(client, "nobody-here", "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    assert GENERIC in wrong.text and GENERIC in unknown.text
    reasons = [r.detail for r in await server.audit_rows("login_failed")]
    assert any("bad_password" in d for d in reasons) and any("unknown_user" in d for d in reasons)


async def test_unknown_user_costs_one_bcrypt_check_like_a_known_one(
        server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    await server.make_user("alice")
    calls: list[int] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(len(hashed))
        return real(password, hashed)

    async with server.client() as client:
        await csrf_of(client)
        await login(client, "nobody", "x" * 20)  # warms the dummy hash
        monkeypatch.setattr(bcrypt, "checkpw", counting)
        await login(client, "alice", "wrong password here")
        known = list(calls)
        calls.clear()
        await login(client, "nobody", "wrong password here")
        unknown = list(calls)
    assert len(known) == len(unknown) == 1
    assert known[0] == unknown[0] == 60  # a full bcrypt hash is checked both times


async def test_lockout_after_five_failures_and_expiry_with_clock(server: LiveServer) -> None:
    await server.make_user("bob")
    async with server.client() as client:
        for _ in range(5):
            assert (await login(client, "bob", "wrong wrong wrong")).status_code == 401
        locked = await login(client, "bob")  # the right password is refused while locked
        assert locked.status_code == 401 and GENERIC in locked.text
        assert len(await server.audit_rows("account_locked")) == 1
        server.clock.advance(14 * 60)
        assert (await login(client, "bob")).status_code == 401
        server.clock.advance(61)
        assert (await login(client, "bob")).status_code == 302


async def test_a_successful_login_clears_earlier_failures(server: LiveServer) -> None:
    await server.make_user("erin")
    async with server.client() as client:
        for _ in range(2):  # 4 failures, success, 4 failures: never 5 in a row, never locked
            for _ in range(4):
                assert (await login(client, "erin", "wrong wrong wrong")).status_code == 401
            assert (await login(client, "erin")).status_code == 302
    assert await server.audit_rows("account_locked") == []


async def test_lookalike_username_shares_the_lockout(server: LiveServer) -> None:
    await server.make_user("carol")
    async with server.client() as client:
        for variant in ("CAROL", "Carol", "\uff43\uff41\uff52\uff4f\uff4c", "carol",
                        "\uff23\uff21\uff32\uff2f\uff2c"):  # full-width carol, CAROL
            await login(client, variant, "wrong wrong wrong")
        assert (await login(client, "carol")).status_code == 401
    assert len(await server.audit_rows("account_locked")) == 1


@pytest.mark.parametrize("password", [
    "p" * 1024,
    "密码" * 300,                      # 1,800 bytes of UTF-8
    "  spaces at both ends  " * 4,   # kept exactly as typed
])
async def test_long_and_unusual_passwords_work_exactly_as_typed(
        server: LiveServer, password: str) -> None:
    await server.make_user("dave", password)
    async with server.client() as client:
        assert (await login(client, "dave", password)).status_code == 302
    async with server.client() as client:
        assert (await login(client, "dave", password.strip())).status_code in (302, 401)
        if password != password.strip():
            assert (await login(client, "dave", password.strip())).status_code == 401


async def test_passwords_sharing_the_first_72_bytes_are_different(server: LiveServer) -> None:
    base = "s" * 72
    await server.make_user("erin", base + "-one")
    async with server.client() as client:
        assert (await login(client, "erin", base + "-two")).status_code == 401
        assert (await login(client, "erin", base)).status_code == 401
        assert (await login(client, "erin", base + "-one")).status_code == 302


async def test_login_issues_a_new_token_no_fixation(server: LiveServer) -> None:
    await server.make_user("frank")
    async with server.client() as client:
        client.cookies.set("streamzy_session", "attacker-chosen-value", domain="127.0.0.1")
        await login(client, "frank")
        first = client.cookies["streamzy_session"]
        assert first != "attacker-chosen-value"
        await login(client, "frank")
        second = client.cookies["streamzy_session"]
        assert second != first
    async with server.client(cookies={"streamzy_session": first}) as old:
        assert (await old.get("/account")).status_code == 302  # the replaced token is dead


async def test_logout_ends_the_session_and_replay_fails(server: LiveServer) -> None:
    await server.make_user("gina")
    async with server.client() as client:
        await login(client, "gina")
        token = client.cookies["streamzy_session"]
        response = await post_form(client, "/logout")
        assert response.status_code == 302
        assert response.headers["location"] == "/login?reason=logged_out"
        assert "cookies" in response.headers["clear-site-data"]
    async with server.client(cookies={"streamzy_session": token}) as replay:
        again = await replay.get("/account")
        assert again.status_code == 302 and again.headers["location"].startswith("/login")
    assert len(await server.audit_rows("logout")) == 1


async def test_logout_by_get_is_refused(server: LiveServer) -> None:
    await server.make_user("hank")
    async with server.client() as client:
        await login(client, "hank")
        assert (await client.get("/logout")).status_code == 405
        assert (await client.get("/account")).status_code == 200


async def test_idle_timeout_and_activity_with_clock(server: LiveServer) -> None:
    await server.make_user("ivy")
    async with server.client() as client:
        await login(client, "ivy")
        server.clock.advance(2 * 3600 - 60)
        assert (await client.get("/account")).status_code == 200  # activity refreshes
        server.clock.advance(2 * 3600 - 60)
        assert (await client.get("/account")).status_code == 200
        server.clock.advance(2 * 3600 + 1)
        expired = await client.get("/account")
        assert expired.status_code == 302 and "reason=idle" in expired.headers["location"]
    assert len(await server.audit_rows("session_expired")) == 1


async def test_absolute_lifetime_with_clock(server: LiveServer) -> None:
    await server.make_user("jack")
    async with server.client() as client:
        await login(client, "jack")
        for _ in range(12):
            server.clock.advance(3600 - 1)
            assert (await client.get("/account")).status_code == 200
        server.clock.advance(60)
        expired = await client.get("/account")
        assert expired.status_code == 302 and "reason=absolute" in expired.headers["location"]


async def test_first_login_forces_a_password_change(server: LiveServer) -> None:
    await server.make_user("kate", must_change=True)
    async with server.client() as client:
        response = await login(client, "kate")
        assert response.headers["location"] == "/account/password?first=1"
        for path in ("/account", "/", "/admin/users"):
            blocked = await client.get(path)
            if path == "/":
                blocked = await client.get("/account")
            assert blocked.status_code == 302
            assert blocked.headers["location"].startswith("/account/password")
        bad = await post_form(client, "/account/password", {
            "current_password": TEST_PASSWORD, "new_password": "password1234",
            "confirm_password": "password1234"}, page="/account/password")
        assert bad.status_code == 400 and "commonly used" in bad.text
        good = await post_form(client, "/account/password", {
            "current_password": TEST_PASSWORD, "new_password": "violet kettle drums 77",
            "confirm_password": "violet kettle drums 77"}, page="/account/password")
        assert good.status_code == 302
        assert good.headers["location"] == "/rooms?welcome=1"  # into chat, not the account
        assert (await client.get("/account")).status_code == 200
    async with server.client() as client:
        assert (await login(client, "kate", "violet kettle drums 77")).status_code == 302
    assert len(await server.audit_rows("password_changed")) == 1


@pytest.mark.parametrize(("asked", "first_page", "lands_on"), [
    ("/rooms/general", "/account/password?first=1&next=/rooms/general", "/rooms/general"),
    ("/admin/users", "/account/password?first=1", "/rooms?welcome=1"),
    ("//evil.example/rooms/x", "/account/password?first=1", "/rooms?welcome=1"),
    ("/rooms/general/../../logout", "/account/password?first=1", "/rooms?welcome=1"),
])
async def test_a_first_password_change_goes_on_only_to_a_room_asked_for(
        server: LiveServer, asked: str, first_page: str, lands_on: str) -> None:
    await server.make_user("kate", must_change=True)
    async with server.client() as client:
        token = await csrf_of(client, "/login")
        response = await client.post("/login", data={
            "username": "kate", "password": TEST_PASSWORD, "next": asked, "csrf_token": token})
        assert response.headers["location"] == first_page
        form = await client.get(first_page)
        assert ('name="next"' in form.text) == (lands_on != "/rooms?welcome=1")
        changed = await post_form(client, "/account/password", {
            "current_password": TEST_PASSWORD, "new_password": "violet kettle drums 77",
            "confirm_password": "violet kettle drums 77", "next": asked},
            page="/account/password")  # the hidden field, tampered with: checked again
        assert changed.status_code == 302 and changed.headers["location"] == lands_on


async def test_a_later_password_change_returns_to_the_account_page(server: LiveServer) -> None:
    await server.make_user("kate")
    async with server.client() as client:
        await login(client, "kate")
        changed = await post_form(client, "/account/password", {
            "current_password": TEST_PASSWORD, "new_password": "violet kettle drums 77",
            "confirm_password": "violet kettle drums 77", "next": "/rooms/general"},
            page="/account/password")
        assert changed.status_code == 302
        assert changed.headers["location"] == "/account?changed=1"


async def test_password_change_can_end_other_sessions(server: LiveServer) -> None:
    await server.make_user("leo")
    async with server.client() as one, server.client() as two:
        await login(one, "leo")
        await login(two, "leo")
        response = await post_form(one, "/account/password", {
            "current_password": TEST_PASSWORD, "new_password": "orange lamp river 42",
            "confirm_password": "orange lamp river 42", "end_other_sessions": "on"},
            page="/account/password")
        assert response.status_code == 302
        assert (await one.get("/account")).status_code == 200
        assert (await two.get("/account")).status_code == 302


async def test_wrong_current_password_is_refused(server: LiveServer) -> None:
    await server.make_user("mia")
    async with server.client() as client:
        await login(client, "mia")
        response = await post_form(client, "/account/password", {
            "current_password": "not it at all", "new_password": "orange lamp river 42",
            "confirm_password": "orange lamp river 42"}, page="/account/password")
        assert response.status_code == 400 and "not correct" in response.text


async def test_malformed_login_bodies_get_4xx_never_500(server: LiveServer) -> None:
    async with server.client() as client:
        token = await csrf_of(client)
        cases = [
            {"username": "a", "csrf_token": token},                          # missing field
            {"username": "a\x00b", "password": "x", "csrf_token": token},    # control char
            {"username": "a", "password": "x", "extra": "1", "csrf_token": token},
            {"username": "a" * 500, "password": "x", "csrf_token": token},
        ]
        for data in cases:
            response = await client.post("/login", data=data)
            assert response.status_code == 400, data
        repeated = await client.post("/login", content=f"username=a&username=b&password=x"
                                     f"&csrf_token={token}",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert repeated.status_code == 400
        json_body = await client.post("/login", json={"username": "a", "password": "b"},
                                      headers={"X-CSRF-Token": token})
        assert json_body.status_code == 415
        huge = await client.post("/login", data={"username": "a", "password": "x" * 40_000,
                                                 "csrf_token": token})
        assert huge.status_code == 413


@pytest.mark.parametrize("target", [
    "//evil.example", "/\\evil.example", "https://evil.example", "/\t/evil.example",
    "/\n/evil.example", "/\r/evil.example", "\t//evil.example", "/\x00/evil.example",
])
async def test_next_never_leaves_the_site(server: LiveServer, target: str) -> None:
    await server.make_user("nina")
    async with server.client() as client:
        token = await csrf_of(client)
        response = await client.post("/login", data={"username": "nina",
                                                      "password": TEST_PASSWORD,
                                                      "next": target, "csrf_token": token})
    assert response.status_code == 302
    assert response.headers["location"] == "/"


async def test_next_keeps_a_local_path(server: LiveServer) -> None:
    await server.make_user("otto")
    async with server.client() as client:
        token = await csrf_of(client)
        response = await client.post("/login", data={"username": "otto",
                                                      "password": TEST_PASSWORD,
                                                      "next": "/account?tab=sessions",
                                                      "csrf_token": token})
    assert response.headers["location"] == "/account?tab=sessions"


async def test_a_password_typed_as_username_is_not_kept_in_the_audit(server: LiveServer) -> None:
    async with server.client() as client:
        await login(client, "Tr0ub4dor&3-my-real-password", "oops")
        await login(client, "Tr0ub4dor&3-my-real-password", "oops again")
        await login(client, "someone-else", "x")
    rows = await server.audit_rows("login_failed")
    assert all("Tr0ub4dor" not in r.detail for r in rows)
    prints = [json.loads(r.detail)["name_fingerprint"] for r in rows]
    assert prints[0] == prints[1] != prints[2]  # repeated attempts still show up
