"""Passkeys on the web edge (issue 16, items 2, 4, 5, 7): the JSON ceremonies driven by a
software authenticator over real HTTP, both edges' view of each state (pages, sockets,
the API), and bad input answered with stable 4xx codes."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import socketio

from streamzy.services.sign_in_challenges import SECOND_FACTOR
from tests.conftest import CLIENT, LiveServer, audit_rows, csrf_of, login
from tests.passkey_authenticator import SoftAuthenticator
from tests.realtime.helpers import ChatClient

CHALLENGE_COOKIE = "streamzy_challenge"
SESSION_COOKIE = "streamzy_session"


@pytest.fixture
def server_settings() -> dict[str, Any]:
    # Every test here makes many ceremonies from one address on a clock that never moves.
    return {"rate_second_factor": "1000/5m"}


def device_for(server: LiveServer) -> SoftAuthenticator:
    return SoftAuthenticator(origin=server.url, rp_id="127.0.0.1")


async def post_json(client: httpx.AsyncClient, path: str, body: Any = None, *,
                    page: str = "/login") -> httpx.Response:
    token = await csrf_of(client, page)
    return await client.post(path, json=body or {}, headers={
        "X-CSRF-Token": token, "Accept": "application/json"})


async def signed_in_client(server: LiveServer, name: str) -> httpx.AsyncClient:
    await server.make_user(name)
    client = server.client()
    response = await login(client, name)
    assert response.status_code == 302, response.text
    return client


async def add_passkey(server: LiveServer, client: httpx.AsyncClient,
                      device: SoftAuthenticator, name: str = "Laptop",
                      page: str = "/account") -> httpx.Response:
    options = await post_json(client, "/account/passkeys/options", page=page)
    assert options.status_code == 200, options.text
    assert options.headers["Cache-Control"] == "no-store"
    return await post_json(client, "/account/passkeys/register",
                           {"credential": device.create(options.json()), "name": name},
                           page=page)


async def passkey_sign_in(client: httpx.AsyncClient, device: SoftAuthenticator,
                          **bend: Any) -> httpx.Response:
    options = await post_json(client, "/login/passkey/options")
    assert options.status_code == 200, options.text
    assert CHALLENGE_COOKIE in client.cookies
    return await post_json(client, "/login/passkey/verify",
                           {"credential": device.get(options.json(), **bend),
                            "next": "/rooms"})


async def half_signed_in(server: LiveServer, client: httpx.AsyncClient, user_id: int) -> None:
    """The state the password step leaves: only a SECOND_FACTOR challenge cookie."""
    token = await server.services.challenges.start(SECOND_FACTOR, CLIENT, user_id=user_id)
    client.cookies.set(CHALLENGE_COOKIE, token, domain="127.0.0.1")


async def test_register_then_sign_in_without_username(server: LiveServer) -> None:
    client = await signed_in_client(server, "alice")
    device = device_for(server)
    added = await add_passkey(server, client, device, "<script>x</script>")
    assert added.status_code == 200, added.text
    assert added.json()["passkey"]["name"] == "<script>x</script>"
    page = await client.get("/account/passkeys")
    assert page.status_code == 200
    assert "&lt;script&gt;x&lt;/script&gt;" in page.text and "<script>x<" not in page.text
    await client.aclose()

    async with server.client() as browser:
        signed = await passkey_sign_in(browser, device)
        assert signed.status_code == 200, signed.text
        assert signed.json() == {"next": "/rooms"}
        assert SESSION_COOKIE in browser.cookies and CHALLENGE_COOKIE not in browser.cookies
        assert (await browser.get("/account")).status_code == 200
        # A browser signed in by passkey gets a socket.
        chat = ChatClient(server, cookie=browser.cookies[SESSION_COOKIE],
                          csrf=await csrf_of(browser, "/account"),
                          headers={"Origin": server.url})
        await chat.connect()
        assert chat.sio.connected
        await chat.close()
    rows = await audit_rows(server.services, "login_succeeded")
    assert json.loads(rows[-1].detail) == {"method": "passkey", "step": "passkey"}


async def test_sign_in_refusals_are_generic_and_audited(server: LiveServer) -> None:
    client = await signed_in_client(server, "alice")
    device = device_for(server)
    await add_passkey(server, client, device)
    await client.aclose()
    async with server.client() as browser:
        for bend in ({"origin": "http://evil.example"}, {"rp_id": "evil.example"},
                     {"verified": False}):
            refused = await passkey_sign_in(browser, device, **bend)
            assert refused.status_code == 401
            assert refused.json()["code"] == "passkey_refused"
            assert SESSION_COOKIE not in browser.cookies
        # Replaying an answer: its challenge was used up.
        options = await post_json(browser, "/login/passkey/options")
        answer = device.get(options.json())
        first = await post_json(browser, "/login/passkey/verify", {"credential": answer})
        assert first.status_code == 200
        browser.cookies.clear()
        browser.cookies.set(CHALLENGE_COOKIE, options.cookies[CHALLENGE_COOKIE],
                            domain="127.0.0.1")
        again = await post_json(browser, "/login/passkey/verify", {"credential": answer})
        assert again.status_code == 403 and again.json()["code"] == "no_challenge"
    reasons = [json.loads(r.detail)["reason"]
               for r in await audit_rows(server.services, "second_factor_failed")]
    assert reasons == ["wrong_origin", "wrong_rp_id", "not_verified", "no_challenge"]


async def test_sign_in_needs_its_own_challenge_cookie(server: LiveServer) -> None:
    client = await signed_in_client(server, "alice")
    device = device_for(server)
    await add_passkey(server, client, device)
    async with server.client() as attacker, server.client() as victim:
        # The attacker's challenge, answered in another browser without its cookie.
        options = await post_json(attacker, "/login/passkey/options")
        answer = device.get(options.json())
        refused = await post_json(victim, "/login/passkey/verify", {"credential": answer})
        assert refused.status_code == 403 and refused.json()["code"] == "no_challenge"
    await client.aclose()


async def test_passkey_as_second_factor(server: LiveServer) -> None:
    alice = await signed_in_client(server, "alice")
    bob = await signed_in_client(server, "bob")
    alice_key, bob_key = device_for(server), device_for(server)
    await add_passkey(server, alice, alice_key)
    await add_passkey(server, bob, bob_key)
    await alice.aclose()
    await bob.aclose()
    alice_id = (await server.services.accounts.by_username("alice")).id  # type: ignore[union-attr]
    async with server.client() as browser:
        await half_signed_in(server, browser, alice_id)
        # Half-signed-in is signed out on every edge: pages, API, socket.
        assert (await browser.get("/rooms")).status_code == 302
        api = await browser.get("/api/v1/rooms", headers={"Accept": "application/json"})
        assert api.status_code == 401
        chat = ChatClient(server, cookie=browser.cookies[CHALLENGE_COOKIE],
                          cookie_name=CHALLENGE_COOKIE, headers={"Origin": server.url})
        with pytest.raises(socketio.exceptions.ConnectionError):
            await chat.connect()
        assert "not_authenticated" in str(chat.connect_errors)
        await chat.close()
        # Bob's valid passkey does not finish Alice's sign-in.
        options = await post_json(browser, "/login/second-factor/passkey/options")
        assert [c["id"] for c in options.json()["allowCredentials"]] == [alice_key.id]
        foreign = await post_json(browser, "/login/second-factor/passkey/verify",
                                  {"credential": bob_key.get(options.json())})
        assert foreign.status_code == 401 and SESSION_COOKIE not in browser.cookies
        options = await post_json(browser, "/login/second-factor/passkey/options")
        passed = await post_json(browser, "/login/second-factor/passkey/verify",
                                 {"credential": alice_key.get(options.json()),
                                  "next": "//evil.example"})
        assert passed.status_code == 200 and passed.json() == {"next": "/"}
        assert SESSION_COOKIE in browser.cookies
        assert (await browser.get("/rooms")).status_code == 200
    failed = (await audit_rows(server.services, "second_factor_failed"))[-1]
    assert json.loads(failed.detail)["reason"] == "foreign_credential"
    assert failed.user_id == alice_id


async def test_second_step_expires_and_counts_toward_lockout(server: LiveServer) -> None:
    client = await signed_in_client(server, "alice")
    device = device_for(server)
    await add_passkey(server, client, device)
    await client.aclose()
    alice = await server.services.accounts.by_username("alice")
    assert alice is not None
    async with server.client() as browser:
        await half_signed_in(server, browser, alice.id)
        options = await post_json(browser, "/login/second-factor/passkey/options")
        server.clock.advance(server.services.settings.second_factor_seconds + 1)
        late = await post_json(browser, "/login/second-factor/passkey/verify",
                               {"credential": device.get(options.json())})
        assert late.status_code == 403 and late.json()["code"] == "no_challenge"
        await half_signed_in(server, browser, alice.id)
        for _ in range(server.services.settings.lockout_threshold):
            options = await post_json(browser, "/login/second-factor/passkey/options")
            wrong = await post_json(browser, "/login/second-factor/passkey/verify", {
                "credential": device.get(options.json(), origin="http://evil.example")})
            assert wrong.status_code == 401
        assert CHALLENGE_COOKIE not in browser.cookies  # the step ended with the lockout
    assert len(await audit_rows(server.services, "account_locked")) == 1


async def test_removal_and_registration_want_a_recent_proof(server: LiveServer) -> None:
    client = await signed_in_client(server, "alice")
    device = device_for(server)
    assert (await add_passkey(server, client, device)).status_code == 200
    passkey_id = (await server.services.passkeys.list_for_user(
        (await server.services.accounts.by_username("alice")).id))[0].id  # type: ignore[union-attr]
    server.clock.advance(server.services.settings.step_up_seconds + 1)
    stale = await post_json(client, "/account/passkeys/options", page="/account")
    assert stale.status_code == 403 and stale.json()["code"] == "step_up_required"
    token = await csrf_of(client, "/account/passkeys")
    remove = await client.post(f"/account/passkeys/{passkey_id}/remove",
                               data={"csrf_token": token},
                               headers={"Referer": f"{server.url}/account/passkeys"})
    assert remove.status_code == 303
    assert remove.headers["Location"] == "/account/confirm?next=/account/passkeys"
    # Step-up with the passkey itself, then the removal passes.
    options = await post_json(client, "/account/confirm/passkey/options", page="/account")
    assert options.json()["userVerification"] == "required"
    confirmed = await post_json(client, "/account/confirm/passkey/verify",
                                {"credential": device.get(options.json()),
                                 "next": "/account/passkeys"}, page="/account")
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json() == {"ok": True, "next": "/account/passkeys"}
    token = await csrf_of(client, "/account/passkeys")
    removed = await client.post(f"/account/passkeys/{passkey_id}/remove",
                                data={"csrf_token": token})
    assert removed.status_code == 302
    assert removed.headers["Location"] == "/account/passkeys?removed=1"
    assert "You have no passkeys yet" in (await client.get("/account/passkeys")).text
    passed = await audit_rows(server.services, "step_up_passed")
    assert json.loads(passed[-1].detail) == {"method": "passkey"}
    assert len(await audit_rows(server.services, "second_factor_removed")) == 1
    await client.aclose()


@pytest.mark.parametrize(("body", "headers", "status", "code"), [
    (b"{not json", {"Content-Type": "application/json"}, 400, "invalid_json"),
    # Deep nesting within the size cap: parsed or refused, never a 500.
    (b"[" * 8000 + b"]" * 8000, {"Content-Type": "application/json"}, 400, "invalid_payload"),
    (b"[1, 2]", {"Content-Type": "application/json"}, 400, "invalid_payload"),
    (b'{"credential": "x"}', {"Content-Type": "application/json"}, 400, "invalid_input"),
    (b'{"credential": {}, "next": 5}', {"Content-Type": "application/json"}, 400,
     "invalid_input"),
    (b'{"credential": {}, "extra": 1}', {"Content-Type": "application/json"}, 400,
     "invalid_input"),
    (b"credential=x", {"Content-Type": "application/x-www-form-urlencoded"}, 415,
     "unsupported_media_type"),
    (b'{"credential": {"id": "' + b"A" * 20000 + b'"}}', {"Content-Type": "application/json"},
     413, "too_large"),
])
async def test_bad_input_gets_stable_codes(server: LiveServer, body: bytes,
                                           headers: dict[str, str], status: int,
                                           code: str) -> None:
    async with server.client() as browser:
        token = await csrf_of(browser, "/login")
        await post_json(browser, "/login/passkey/options")
        response = await browser.post("/login/passkey/verify", content=body,
                                      headers={**headers, "X-CSRF-Token": token,
                                               "Accept": "application/json"})
        assert response.status_code == status, response.text
        assert response.json()["code"] == code


async def test_garbage_credentials_are_refusals_not_errors(server: LiveServer) -> None:
    client = await signed_in_client(server, "alice")
    device = device_for(server)
    await add_passkey(server, client, device)
    async with server.client() as browser:
        for credential in ({}, {"id": device.id, "rawId": device.id, "type": "public-key",
                                "response": {"clientDataJSON": "%%%", "signature": 7}},
                           {"id": device.id, "rawId": device.id, "type": "public-key",
                            "response": {"clientDataJSON": "e30", "authenticatorData": "AA",
                                         "signature": "AA"}}):
            await post_json(browser, "/login/passkey/options")
            response = await post_json(browser, "/login/passkey/verify",
                                       {"credential": credential})
            assert response.status_code == 401, response.text
        # Registration with a garbage answer: 400 with a code.
        await post_json(client, "/account/passkeys/options", page="/account")
        bad = await post_json(client, "/account/passkeys/register",
                              {"credential": {"id": "x"}, "name": "n"}, page="/account")
        assert bad.status_code == 400 and bad.json()["code"] == "passkey_refused"
        bad_name = await post_json(client, "/account/passkeys/register",
                                   {"credential": {}, "name": "a\u0007b"}, page="/account")
        assert bad_name.status_code == 400 and bad_name.json()["code"] == "invalid_name"
    await client.aclose()


async def test_json_endpoints_need_the_csrf_header(server: LiveServer) -> None:
    async with server.client() as browser:
        await browser.get("/login")
        response = await browser.post("/login/passkey/options", json={},
                                      headers={"Accept": "application/json"})
        assert response.status_code == 403 and response.json()["code"] == "csrf_failed"


async def test_pages_show_the_passkey_blocks(server: LiveServer) -> None:
    async with server.client() as browser:
        page = await browser.get("/login")
        assert 'data-passkey-action="sign-in"' in page.text
        assert '<script src="/static/passkeys.js" defer></script>' in page.text
    client = await signed_in_client(server, "alice")
    page = await client.get("/account/passkeys")
    assert "You have no passkeys yet" in page.text and "data-passkey-register" in page.text
    script = await client.get("/static/passkeys.js")
    assert script.status_code == 200 and "navigator.credentials" in script.text
    await client.aclose()


async def test_forced_enrolment_can_step_up_then_add_a_passkey(server: LiveServer) -> None:
    # Policy "everyone", no factor yet, and the sign-in proof has gone stale: the confirm
    # page must stay reachable (it is part of enrolling), then the passkey can be added.
    from streamzy.storage import system_state
    from tests.conftest import TEST_PASSWORD
    async with server.services.db.unit() as db:
        await system_state.write(db, system_state.SECOND_FACTOR_POLICY, "everyone",
                                 server.clock.now())
    client = await signed_in_client(server, "erin")
    try:
        assert (await client.get("/rooms")).headers["location"] == \
            "/account/second-factor?required=1"
        server.clock.advance(server.services.settings.step_up_seconds + 1)
        stale = await post_json(client, "/account/passkeys/options", page="/account/passkeys")
        assert stale.status_code == 403 and stale.json()["code"] == "step_up_required"
        confirm = await client.get("/account/confirm?next=/account/passkeys")
        assert confirm.status_code == 200
        proved = await client.post("/account/confirm", data={
            "password": TEST_PASSWORD, "next": "/account/passkeys",
            "csrf_token": await csrf_of(client, "/account/confirm")})
        assert proved.status_code == 303 and proved.headers["location"] == "/account/passkeys"
        added = await add_passkey(server, client, device_for(server),
                                  page="/account/passkeys")
        assert added.status_code == 200, added.text
        assert (await client.get("/rooms")).status_code == 200  # enrolled: the gate opens
    finally:
        await client.aclose()


async def test_hostile_headers_get_an_answer_never_a_500(server: LiveServer) -> None:
    # A malformed Host on the passkey routes, a malformed Referer on a step-up form post.
    async with server.client() as client:
        token = await csrf_of(client, "/login")
        answer = await client.post("/login/passkey/options", json={}, headers={
            "X-CSRF-Token": token, "Accept": "application/json", "Host": "[bad"})
        assert answer.status_code < 500, answer.text
    await server.make_user("root", admin=True)
    async with server.client() as admin:
        await login(admin, "root")
        token = await csrf_of(admin, "/admin/security")
        server.clock.advance(server.services.settings.step_up_seconds + 1)
        answer = await admin.post("/admin/security/policy", data={
            "policy": "admins", "csrf_token": token}, headers={"Referer": "http://[bad/x"})
        assert answer.status_code == 303
        assert answer.headers["location"] == "/account/confirm?next=/"


async def test_wrong_passkey_answers_at_step_up_lock_and_sign_out(server: LiveServer) -> None:
    # A stolen session guessing at the confirm page's passkey step: the answer that locks
    # the account ends every session, this one included (as wrong passwords there do).
    client = await signed_in_client(server, "alice")
    try:
        device = device_for(server)
        assert (await add_passkey(server, client, device)).status_code == 200
        codes = []
        for _ in range(server.services.settings.lockout_threshold):
            options = await post_json(client, "/account/confirm/passkey/options",
                                      page="/account")
            answer = await post_json(client, "/account/confirm/passkey/verify", {
                "credential": device.get(options.json(), origin="http://evil.example")},
                page="/account")
            codes.append((answer.status_code, answer.json()["code"]))
        assert codes[:-1] == [(401, "passkey_refused")] * (len(codes) - 1)
        assert codes[-1] == (401, "locked_signed_out")
        assert (await client.get("/account")).headers["location"].startswith("/login")
    finally:
        await client.aclose()
    assert len(await audit_rows(server.services, "account_locked")) == 1
