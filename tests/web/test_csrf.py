"""CSRF: synchronizer tokens per session, Origin and Fetch-Metadata checks, login CSRF."""

from __future__ import annotations

import json

from tests.conftest import TEST_PASSWORD, LiveServer, csrf_of, login

APPLY = {"username": "newcomer", "display_name": "New Comer", "email": "new@example.org",
         "reason": "I would like to talk with the team."}


async def _csrf_failures(server: LiveServer) -> list[str]:
    return [json.loads(r.detail)["reason"] for r in await server.audit_rows("csrf_failed")]


async def test_post_without_token_is_refused_and_audited(server: LiveServer) -> None:
    user = await server.make_user("alice")
    async with server.client() as client:
        await login(client, "alice")
        response = await client.post("/logout", data={})
        assert response.status_code == 403
        assert "csrf_failed" in response.text
        assert (await client.get("/account")).status_code == 200  # still signed in
    rows = await server.audit_rows("csrf_failed")
    assert len(rows) == 1
    assert rows[0].user_id == user.id
    assert json.loads(rows[0].detail) == {"path": "/logout", "reason": "missing-token"}


async def test_token_of_another_session_is_refused(server: LiveServer) -> None:
    await server.make_user("alice")
    await server.make_user("bob")
    async with server.client() as victim, server.client() as attacker:
        await login(victim, "alice")
        await login(attacker, "bob")
        foreign = await csrf_of(attacker, "/account")
        own = await csrf_of(victim, "/account")
        assert foreign != own
        response = await victim.post("/logout", data={"csrf_token": foreign})
        assert response.status_code == 403
        assert (await victim.get("/account")).status_code == 200
        header = await victim.post("/logout", headers={"X-CSRF-Token": foreign})
        assert header.status_code == 403
    assert await _csrf_failures(server) == ["bad-token", "bad-token"]


async def test_valid_token_from_a_foreign_origin_is_refused(server: LiveServer) -> None:
    await server.make_user("alice")
    async with server.client() as client:
        await login(client, "alice")
        token = await csrf_of(client, "/account")
        response = await client.post("/logout", data={"csrf_token": token},
                                     headers={"Origin": "https://evil.example"})
        assert response.status_code == 403
        referred = await client.post("/logout", data={"csrf_token": token},
                                     headers={"Referer": "https://evil.example/page"})
        assert referred.status_code == 403
        opaque = await client.post("/logout", data={"csrf_token": token},
                                   headers={"Origin": "null"})
        assert opaque.status_code == 403
        assert (await client.get("/account")).status_code == 200
    assert await _csrf_failures(server) == ["foreign-origin", "foreign-referer", "null-origin"]


async def test_cross_site_fetch_metadata_is_refused(server: LiveServer) -> None:
    await server.make_user("alice")
    async with server.client() as client:
        await login(client, "alice")
        token = await csrf_of(client, "/account")
        for site in ("cross-site", "same-site"):
            response = await client.post("/logout", data={"csrf_token": token},
                                         headers={"Sec-Fetch-Site": site})
            assert response.status_code == 403, site
        assert (await client.get("/account")).status_code == 200
    assert await _csrf_failures(server) == ["sec-fetch-site:cross-site",
                                            "sec-fetch-site:same-site"]


async def test_anonymous_login_and_apply_forms_need_the_token(server: LiveServer) -> None:
    await server.make_user("alice")
    async with server.client() as client:
        await csrf_of(client, "/login")  # the anonymous cookie is set, but no token is sent
        no_token = await client.post("/login", data={"username": "alice",
                                                     "password": TEST_PASSWORD})
        assert no_token.status_code == 403
        assert "streamzy_session" not in client.cookies
        forged = await client.post("/login", data={"username": "alice",
                                                   "password": TEST_PASSWORD,
                                                   "csrf_token": "0" * 64})
        assert forged.status_code == 403
        apply = await client.post("/apply", data=APPLY)
        assert apply.status_code == 403
    async with server.client() as other, server.client() as client:
        # A token minted for another browser's anonymous cookie does not transfer.
        foreign = await csrf_of(other, "/apply")
        await csrf_of(client, "/apply")
        assert (await client.post("/apply", data={**APPLY, "csrf_token": foreign})
                ).status_code == 403
    assert await server.services.applications.pending() == []
    assert len(await server.audit_rows("csrf_failed")) == 4
    assert await server.audit_rows("login_succeeded") == []


async def test_token_rotates_at_login(server: LiveServer) -> None:
    await server.make_user("alice")
    async with server.client() as client:
        before = await csrf_of(client, "/login")
        response = await client.post("/login", data={"username": "alice",
                                                     "password": TEST_PASSWORD,
                                                     "csrf_token": before})
        assert response.status_code == 302
        after = await csrf_of(client, "/account")
        assert after != before
        stale = await client.post("/logout", data={"csrf_token": before})
        assert stale.status_code == 403
        assert (await client.get("/account")).status_code == 200
        assert (await client.post("/logout", data={"csrf_token": after})).status_code == 302
    assert await _csrf_failures(server) == ["bad-token"]


async def test_valid_same_origin_post_succeeds(server: LiveServer) -> None:
    await server.make_user("alice")
    async with server.client() as client:
        await login(client, "alice")
        token = await csrf_of(client, "/account")
        response = await client.post("/logout", data={"csrf_token": token},
                                     headers={"Origin": server.url,
                                              "Referer": server.url + "/account",
                                              "Sec-Fetch-Site": "same-origin"})
        assert response.status_code == 302
        assert response.headers["location"] == "/login?reason=logged_out"
        assert (await client.get("/account")).status_code == 302
    async with server.client() as client:
        token = await csrf_of(client, "/apply")
        applied = await client.post("/apply", data={**APPLY, "csrf_token": token},
                                    headers={"Origin": server.url})
        assert applied.status_code == 200
    assert await server.audit_rows("csrf_failed") == []


NON_ASCII_TOKENS = ["\u00e9" * 64, "t\u00f6ken", "\u2603", "\U0001f600" * 8]


async def test_a_non_ascii_token_is_a_mismatch_not_a_crash(server: LiveServer) -> None:
    """hmac.compare_digest raises TypeError on non-ASCII str: that was a 500, unaudited."""
    await server.make_user("alice")
    async with server.client() as anonymous, server.client() as signed_in:
        await csrf_of(anonymous, "/login")  # the anonymous cookie the token would bind to
        for token in NON_ASCII_TOKENS:
            for path, data in (("/login", {"username": "alice", "password": TEST_PASSWORD}),
                               ("/apply", APPLY)):
                response = await anonymous.post(path, data={**data, "csrf_token": token})
                assert response.status_code == 403, (path, token)
                assert "csrf_failed" in response.text
        assert (await login(signed_in, "alice")).status_code == 302
        for token in NON_ASCII_TOKENS:
            changed = await signed_in.post("/account/password", data={
                "current_password": TEST_PASSWORD, "new_password": "n" * 20 + "ew pass 9",
                "confirm_password": "n" * 20 + "ew pass 9", "csrf_token": token})
            assert changed.status_code == 403
            header = await signed_in.post("/logout", headers={"X-CSRF-Token": token.encode()})
            assert header.status_code == 403
        assert (await signed_in.get("/account")).status_code == 200  # nothing changed
    reasons = await _csrf_failures(server)
    assert reasons == ["bad-token"] * (len(NON_ASCII_TOKENS) * 4)
