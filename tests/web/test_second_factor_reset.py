"""An admin resets someone's second factor (a lost phone): every factor and pending sign-in
step of theirs goes in one transaction, their sessions end and their sockets drop, audited;
refused on bots, on oneself, without a factor, and without a fresh step-up."""

from __future__ import annotations

import json

import httpx
from sqlalchemy import func, select

from streamzy.services.factor_flags import sync_second_factor
from streamzy.storage import system_state
from streamzy.storage.models import (
    RecoveryCode,
    SignInChallenge,
    TotpCredential,
    User,
    WebAuthnCredential,
)
from tests.conftest import CLIENT, LiveServer, csrf_of, login
from tests.realtime.helpers import ChatClient

ENROL = "/account/second-factor?required=1"
TABLES = (TotpCredential, RecoveryCode, WebAuthnCredential, SignInChallenge)


async def enrol(server: LiveServer, user_id: int) -> None:
    """Give ``user_id`` what the TOTP and passkey code would store: a confirmed TOTP
    secret, ten recovery codes, a passkey, and a sign-in step in progress."""
    now = server.clock.now()
    async with server.services.db.unit() as db:
        db.add(TotpCredential(user_id=user_id, secret=b"sealed-secret", master_key_id="k",
                              last_step=0, created_at=now, confirmed_at=now))
        db.add_all([RecoveryCode(user_id=user_id, code_hash=f"{user_id:04d}{i:060d}",
                                 created_at=now) for i in range(10)])
        db.add(WebAuthnCredential(user_id=user_id, credential_id=f"cred-{user_id}",
                                  public_key=b"cose", created_at=now))
        db.add(SignInChallenge(token_hash=f"{user_id:064d}", purpose="second_factor",
                               user_id=user_id, created_at=now))
        await db.flush()
        assert await sync_second_factor(db, user_id)


async def counts(server: LiveServer, user_id: int) -> list[int]:
    async with server.services.db.unit() as db:
        return [int((await db.execute(select(func.count()).select_from(table)
                                      .where(table.user_id == user_id))).scalar_one())
                for table in TABLES]


async def flag(server: LiveServer, user_id: int) -> bool:
    async with server.services.db.unit() as db:
        return bool((await db.execute(select(User.has_second_factor)
                                      .where(User.id == user_id))).scalar_one())


async def act(admin: httpx.AsyncClient, server: LiveServer, user_id: int,
              token: str) -> httpx.Response:
    return await admin.post(f"/admin/users/{user_id}", data={
        "action": "reset_second_factor", "csrf_token": token},
        headers={"Referer": server.url + "/admin/users"})


async def test_reset_removes_every_factor_and_drops_the_users_sockets(
        server: LiveServer) -> None:
    root = await server.make_user("root", admin=True)
    bob = await server.make_user("bob", admin=True)
    carol = await server.make_user("carol")
    await server.make_user("mia")
    async with server.client() as admin, server.client() as owner:
        # Signed in first: these stand-in factors cannot pass the sign-in's second step.
        assert (await login(admin, "root")).status_code == 302
        assert (await login(owner, "bob")).status_code == 302
        for user in (root, bob, carol):
            await enrol(server, user.id)
        async with server.services.db.unit() as db:  # admins must have a factor
            await system_state.write(db, system_state.SECOND_FACTOR_POLICY, "admins",
                                     server.clock.now())
        socket = ChatClient(server, cookie=str(owner.cookies["streamzy_session"]))
        await socket.connect()
        users = await admin.get("/admin/users")
        buttons = users.text.count('data-action="reset_second_factor"')
        assert buttons == 2  # bob and carol; not root (their own), not mia (none)
        assert 'second factor</span>' in users.text
        token = await csrf_of(admin, "/admin/users")
        done = await act(admin, server, bob.id, token)
        assert done.status_code == 302
        assert done.headers["location"] == f"/admin/users?done=reset_second_factor&user={bob.id}"
        notice = await admin.get(done.headers["location"])
        assert "@bob has no second factor any more" in notice.text
        assert await socket.end_reason() == "second_factor_reset"
        await socket.close()
        assert (await owner.get("/rooms")).headers["location"].startswith("/login")
        # Bob is an admin under policy=admins: his next sign-in leads to enrolment.
        assert (await login(owner, "bob")).status_code == 302
        assert (await owner.get("/rooms")).headers["location"] == ENROL
    assert await counts(server, bob.id) == [0, 0, 0, 0]
    assert not await flag(server, bob.id)
    assert await counts(server, carol.id) == [1, 10, 1, 1]  # nobody else's
    assert await flag(server, carol.id)
    rows = await server.audit_rows("second_factor_reset")
    assert [(r.user_id, json.loads(r.detail)) for r in rows] == [
        (root.id, {"target_user_id": bob.id, "totp": True, "recovery_codes": 10,
                   "passkeys": 1, "sessions_ended": 1})]


async def test_reset_is_refused_where_it_makes_no_sense(server: LiveServer) -> None:
    root = await server.make_user("root", admin=True)
    mia = await server.make_user("mia")
    bot, _ = await server.services.bots.create(root.id, "deploy-bot", "Deploy", [], CLIENT)
    async with server.client() as admin:
        assert (await login(admin, "root")).status_code == 302
        await enrol(server, root.id)
        token = await csrf_of(admin, "/admin/users")
        myself = await act(admin, server, root.id, token)
        assert myself.status_code == 403 and "your own second factor" in myself.text
        assert (await act(admin, server, bot.id, token)).status_code == 400
        nothing = await act(admin, server, mia.id, token)
        assert nothing.status_code == 400 and "no second factor" in nothing.text
        assert (await act(admin, server, 987654, token)).status_code == 404
    assert await counts(server, root.id) == [1, 10, 1, 1]
    assert await server.audit_rows("second_factor_reset") == []


async def test_reset_needs_a_fresh_step_up_and_an_admin(server: LiveServer) -> None:
    await server.make_user("root", admin=True)
    bob = await server.make_user("bob")
    await enrol(server, bob.id)
    await server.make_user("mallory")
    async with server.client() as admin, server.client() as member:
        assert (await login(admin, "root")).status_code == 302
        token = await csrf_of(admin, "/admin/users")
        server.clock.advance(server.services.settings.step_up_seconds + 1)
        refused = await act(admin, server, bob.id, token)
        assert refused.status_code == 303
        assert refused.headers["location"] == "/account/confirm?next=/admin/users"
        assert (await login(member, "mallory")).status_code == 302
        forbidden = await act(member, server, bob.id, await csrf_of(member, "/account"))
        assert forbidden.status_code == 403
    assert await counts(server, bob.id) == [1, 10, 1, 1]
    assert await flag(server, bob.id)
    assert await server.audit_rows("second_factor_reset") == []
