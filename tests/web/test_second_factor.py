"""The second factor over HTTP: enrolment pages, the sign-in step, half-signed-in refused
everywhere, expiry, lockout, recovery codes, and no secret readable in the database."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy import select

from streamzy.guards.context import SYSTEM
from streamzy.storage import system_state
from streamzy.storage.models import Base, RecoveryCode, Session, TotpCredential, User
from streamzy.wiring import Services
from tests.conftest import TEST_PASSWORD, LiveServer, csrf_of, login, post_form
from tests.totp import code_at, enrol

CHALLENGE = "streamzy_challenge"
SESSION = "streamzy_session"
CODES = re.compile(r"[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}")


@pytest.fixture
def server_settings() -> dict[str, Any]:
    return {"rate_second_factor": "1000/m", "rate_login": "1000/m"}


def _wrong(secret: str, server: LiveServer) -> str:
    right = {code_at(secret, server.clock, s) for s in (-1, 0, 1)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in right)


async def _enrolled(server: LiveServer, name: str = "alice") -> tuple[User, str, list[str]]:
    user = await server.make_user(name)
    secret, codes = await enrol(server.services, user)
    return user, secret, codes


async def _half_signed_in(client: httpx.AsyncClient, name: str = "alice",
                          target: str = "") -> httpx.Response:
    token = await csrf_of(client, "/login")
    data = {"username": name, "password": TEST_PASSWORD, "csrf_token": token}
    if target:
        data["next"] = target
    response = await client.post("/login", data=data)
    assert response.status_code == 302, response.text
    return response


async def _answer(client: httpx.AsyncClient, code: str, target: str = "/") -> httpx.Response:
    token = await csrf_of(client, "/login/second-factor?next=" + target)
    return await client.post("/login/second-factor",
                             data={"code": code, "next": target, "csrf_token": token})


async def test_enrol_from_the_account_page(server: LiveServer) -> None:
    await server.make_user("alice")
    async with server.client() as client:
        await login(client, "alice")
        page = await client.get("/account/second-factor")
        assert page.status_code == 200 and "Set up an authenticator app" in page.text
        assert 'include "passkeys_section.html"' not in page.text
        begun = await post_form(client, "/account/second-factor/totp/begin",
                                page="/account/second-factor")
        assert begun.status_code == 303
        page = await client.get("/account/second-factor")
        assert page.headers["cache-control"] == "no-store"
        secret = re.search(r'id="totp-secret"[^>]*value="([A-Z2-7]{32})"', page.text)
        assert secret, page.text
        qr = await client.get("/account/second-factor/totp/qr.svg")
        assert qr.status_code == 200
        assert qr.headers["content-type"].startswith("image/svg+xml")
        assert qr.headers["cache-control"] == "no-store"
        assert qr.headers["x-content-type-options"] == "nosniff"
        assert qr.text.startswith("<svg") and "<script" not in qr.text
        wrong = await post_form(client, "/account/second-factor/totp/confirm",
                                {"code": _wrong(secret.group(1), server)},
                                page="/account/second-factor")
        assert wrong.status_code == 400 and "not right" in wrong.text
        done = await post_form(client, "/account/second-factor/totp/confirm",
                               {"code": pyotp.TOTP(secret.group(1)).at(server.clock.now())},
                               page="/account/second-factor")
        assert done.status_code == 200 and done.headers["cache-control"] == "no-store"
        codes = CODES.findall(done.text)
        assert len(set(codes)) == 10
        assert 'data-download="#recovery-codes"' in done.text
        page = await client.get("/account/second-factor")
        assert "Recovery codes left: <strong>10</strong>" in page.text
        assert (await client.get("/account/second-factor/totp/qr.svg")).status_code == 404
    assert [json.loads(r.detail)["method"] for r in
            await server.audit_rows("second_factor_enrolled")] == ["totp"]


async def test_sign_in_with_password_then_code(server: LiveServer) -> None:
    user, secret, _ = await _enrolled(server)
    async with server.client() as client:
        step = await _half_signed_in(client, target="/rooms")
        assert step.headers["location"] == "/login/second-factor?next=/rooms"
        assert CHALLENGE in client.cookies and SESSION not in client.cookies
        cookie = step.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        form = await client.get("/login/second-factor?next=/rooms")
        assert form.status_code == 200
        assert 'autocomplete="one-time-code"' in form.text and 'inputmode="numeric"' in form.text
        assert "Use a recovery code" in form.text
        done = await _answer(client, code_at(secret, server.clock), "/rooms")
        assert done.status_code == 302 and done.headers["location"] == "/rooms"
        assert SESSION in client.cookies and CHALLENGE not in client.cookies
        assert (await client.get("/rooms")).status_code == 200
    events = [r.event for r in await server.audit_rows()]
    assert events.index("sign_in_second_factor_required") < events.index("login_succeeded")
    succeeded = await server.audit_rows("login_succeeded")
    assert [json.loads(r.detail) for r in succeeded] == [{"method": "totp"}]
    async with server.services.db.unit() as db:
        methods = list((await db.execute(select(Session.signed_in_with).where(
            Session.user_id == user.id))).scalars())
    assert methods == ["totp"]


async def test_half_signed_in_gets_no_page_and_no_api(server: LiveServer) -> None:
    await _enrolled(server)
    async with server.client() as client:
        await _half_signed_in(client)
        challenge = client.cookies[CHALLENGE]
        rooms = await client.get("/rooms")
        assert rooms.status_code == 302 and rooms.headers["location"].startswith("/login")
        assert (await client.get("/api/v1/rooms")).status_code == 401
        assert (await client.get("/account")).status_code == 302
    # The challenge token put where a session token goes opens nothing either.
    async with server.client(cookies={SESSION: challenge}) as forged:
        rooms = await forged.get("/rooms")
        assert rooms.status_code == 302 and rooms.headers["location"].startswith("/login")
        assert (await forged.get("/api/v1/rooms")).status_code == 401
    async with server.client(headers={"Authorization": f"Bearer {challenge}"}) as bearer:
        assert (await bearer.get("/api/v1/rooms")).status_code == 401


async def test_the_step_expires(server: LiveServer) -> None:
    _, secret, _ = await _enrolled(server)
    async with server.client() as client:
        await _half_signed_in(client)
        server.clock.advance(server.services.settings.second_factor_seconds + 1)
        page = await client.get("/login/second-factor")
        assert page.headers["location"] == "/login?reason=second_factor_expired"
        token = await csrf_of(client, "/login")
        late = await client.post("/login/second-factor", data={
            "code": code_at(secret, server.clock), "csrf_token": token})
        assert late.headers["location"] == "/login?reason=second_factor_expired"
        assert SESSION not in client.cookies
        notice = await client.get("/login?reason=second_factor_expired")
        assert "ran out of time" in notice.text
        # Without any challenge at all: the same.
        client.cookies.clear()
        assert (await client.get("/login/second-factor")).status_code == 302


async def test_a_challenge_cannot_be_answered_with_another_users_code(
        server: LiveServer) -> None:
    await _enrolled(server, "alice")
    _, bob_secret, _ = await _enrolled(server, "bob")
    async with server.client() as client:
        await _half_signed_in(client, "alice")
        wrong = await _answer(client, code_at(bob_secret, server.clock))
        assert wrong.status_code == 401 and SESSION not in client.cookies


async def test_five_wrong_codes_lock_and_end_the_step(server: LiveServer) -> None:
    _, secret, _ = await _enrolled(server)
    async with server.client() as client:
        await _half_signed_in(client)
        for _ in range(4):
            wrong = await _answer(client, _wrong(secret, server))
            assert wrong.status_code == 401 and "not right" in wrong.text
        locked = await _answer(client, _wrong(secret, server))
        assert locked.headers["location"] == "/login?reason=second_factor_locked"
        assert CHALLENGE not in client.cookies
        again = await login(client, "alice")  # the right password: refused while locked
        assert again.status_code == 401
    failed = [json.loads(r.detail) for r in await server.audit_rows("second_factor_failed")]
    assert len(failed) == 5 and all(d["context"] == "sign_in" for d in failed)
    assert len(await server.audit_rows("account_locked")) == 1
    assert await server.audit_rows("login_succeeded") == []


async def test_wrong_passwords_and_wrong_codes_share_the_lockout(server: LiveServer) -> None:
    _, secret, _ = await _enrolled(server)
    async with server.client() as client:
        for _ in range(2):
            assert (await login(client, "alice", "wrong wrong wrong")).status_code == 401
        await _half_signed_in(client)
        for _ in range(2):
            assert (await _answer(client, _wrong(secret, server))).status_code == 401
        third = await _answer(client, _wrong(secret, server))
        assert third.headers["location"] == "/login?reason=second_factor_locked"


async def test_sign_in_with_a_recovery_code_once(server: LiveServer) -> None:
    _, _, codes = await _enrolled(server)
    async with server.client() as client:
        await _half_signed_in(client)
        done = await _answer(client, codes[0].lower())
        assert done.status_code == 302 and SESSION in client.cookies
    async with server.client() as client:
        await _half_signed_in(client)
        again = await _answer(client, codes[0])
        assert again.status_code == 401
    used = [json.loads(r.detail) for r in await server.audit_rows("recovery_code_used")]
    assert used == [{"left": 9}]
    assert [json.loads(r.detail) for r in await server.audit_rows("login_succeeded")] == [
        {"method": "recovery"}]


async def test_a_used_code_cannot_sign_in_again(server: LiveServer) -> None:
    _, secret, _ = await _enrolled(server)
    code = code_at(secret, server.clock)
    async with server.client() as first:
        await _half_signed_in(first)
        assert (await _answer(first, code)).status_code == 302
    async with server.client() as second:
        await _half_signed_in(second)
        replay = await _answer(second, code)
        assert replay.status_code == 401 and "already used" in replay.text


@pytest.mark.parametrize("code", ["\u0661\u0662\u0663\u0664\u0665\u0666", "12 34 56 78",
                                  "<script>", "x" * 300, "'; drop table users; --", ""])
async def test_malformed_codes_get_a_clear_answer_never_a_500(server: LiveServer,
                                                               code: str) -> None:
    await _enrolled(server)
    async with server.client() as client:
        await _half_signed_in(client)
        answer = await _answer(client, code)
        assert answer.status_code in (400, 401)
        assert "6-digit code" in answer.text and "<script>" not in answer.text


async def test_an_admin_password_reset_keeps_the_factor_then_the_new_password_is_owed(
        server: LiveServer) -> None:
    user, secret, _ = await _enrolled(server)
    admin = await server.make_user("root", admin=True)
    one_time = await server.services.accounts.reset_password(admin.id, user.id, SYSTEM)
    async with server.client() as client:
        token = await csrf_of(client, "/login")
        step = await client.post("/login", data={"username": "alice", "password": one_time,
                                                 "csrf_token": token})
        assert step.headers["location"].startswith("/login/second-factor?next=")
        done = await _answer(client, code_at(secret, server.clock),
                             "/account/password?first=1")
        assert done.headers["location"] == "/account/password?first=1"
        assert (await client.get("/rooms")).headers["location"] == "/account/password?first=1"


async def test_disable_needs_password_and_code(server: LiveServer) -> None:
    user, secret, _ = await _enrolled(server)
    async with server.client() as client:
        await _half_signed_in(client)
        await _answer(client, code_at(secret, server.clock))
        server.clock.advance(30)
        page = "/account/second-factor"
        no_code = await post_form(client, page + "/totp/disable",
                                  {"password": TEST_PASSWORD, "code": ""}, page=page)
        assert no_code.status_code == 400
        no_password = await post_form(client, page + "/totp/disable",
                                      {"password": "wrong wrong", "code":
                                       code_at(secret, server.clock)}, page=page)
        assert no_password.status_code == 400
        off = await post_form(client, page + "/totp/disable",
                              {"password": TEST_PASSWORD, "code":
                               code_at(secret, server.clock)}, page=page)
        assert off.status_code == 303 and off.headers["location"] == page + "?removed=1"
    refreshed = await server.services.accounts.get(user.id)
    assert refreshed is not None and not refreshed.has_second_factor
    assert len(await server.audit_rows("second_factor_removed")) == 1


async def test_regenerate_recovery_codes_from_the_page(server: LiveServer) -> None:
    _, secret, old = await _enrolled(server)
    async with server.client() as client:
        await _half_signed_in(client)
        await _answer(client, old[0])
        page = "/account/second-factor"
        fresh = await post_form(client, page + "/recovery-codes",
                                {"code": code_at(secret, server.clock)}, page=page)
        assert fresh.status_code == 200 and fresh.headers["cache-control"] == "no-store"
        new = CODES.findall(fresh.text)
        assert len(set(new)) == 10 and not set(new) & set(old)


async def test_an_account_that_must_enrol_reaches_only_enrolment(server: LiveServer) -> None:
    await server.make_user("alice")
    async with server.services.db.unit() as db:
        await system_state.write(db, system_state.SECOND_FACTOR_POLICY, "everyone",
                                 server.clock.now())
    async with server.client() as client:
        assert (await login(client, "alice")).status_code == 302
        assert (await client.get("/rooms")).headers["location"] == \
            "/account/second-factor?required=1"
        page = await client.get("/account/second-factor?required=1")
        assert page.status_code == 200 and "requires a second factor" in page.text
        # Every other link would bounce back here: the menu offers only signing out.
        assert 'href="/rooms"' not in page.text and 'action="/logout"' in page.text
        await post_form(client, "/account/second-factor/totp/begin",
                        page="/account/second-factor")
        page = await client.get("/account/second-factor")
        secret = re.search(r'value="([A-Z2-7]{32})"', page.text)
        assert secret is not None
        assert (await client.get("/account/second-factor/totp/qr.svg")).status_code == 200
        done = await post_form(client, "/account/second-factor/totp/confirm",
                               {"code": code_at(secret.group(1), server.clock)},
                               page="/account/second-factor")
        assert done.status_code == 200
        assert (await client.get("/rooms")).status_code == 200


def _all_bytes(services: Services, tmp: Path) -> bytes:
    found = b""
    url = services.settings.database_url
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        for file in path.parent.glob(path.name + "*"):  # the file, its -wal and -shm
            found += file.read_bytes()
    log = Path(services.settings.audit_log_path)
    if log.exists():
        found += log.read_bytes()
    return found


async def _table_text(services: Services) -> str:
    parts: list[str] = []
    async with services.db.unit() as db:
        for table in Base.metadata.sorted_tables:
            for row in (await db.execute(select(table))).all():
                for value in row:
                    parts.append(value.decode("latin-1") if isinstance(value, bytes)
                                 else str(value))
    return "\n".join(parts)


async def test_no_totp_secret_or_recovery_code_readable_anywhere(server: LiveServer,
                                                                 tmp_path: Path) -> None:
    user, secret, codes = await _enrolled(server)
    async with server.client() as client:
        await _half_signed_in(client)
        await _answer(client, codes[0])
    text = await _table_text(server.services)
    raw = _all_bytes(server.services, tmp_path)
    for needle in [secret, *codes, *(c.replace("-", "") for c in codes)]:
        assert needle not in text
        assert needle.encode() not in raw
    secret_bytes = base64.b32decode(secret)  # the raw 20 bytes, as pyotp would use them
    assert secret_bytes not in raw and secret_bytes.decode("latin-1") not in text
    # The scan did see this account's sealed secret and hashed codes (so it read real rows).
    async with server.services.db.unit() as db:
        sealed = (await db.execute(select(TotpCredential.secret).where(
            TotpCredential.user_id == user.id))).scalar_one()
        hashes = (await db.execute(select(RecoveryCode.code_hash).where(
            RecoveryCode.user_id == user.id))).scalars().all()
    assert bytes(sealed).decode("latin-1") in text and len(hashes) == 10
    assert all(h in text for h in hashes)


async def test_setting_up_an_app_wants_a_recent_proof(server: LiveServer) -> None:
    # A stolen session must not plant its own authenticator app and lock the owner out.
    await server.make_user("alice")
    async with server.client() as client:
        await login(client, "alice")
        server.clock.advance(server.services.settings.step_up_seconds + 1)
        token = await csrf_of(client, "/account/second-factor")
        begun = await client.post("/account/second-factor/totp/begin",
                                  data={"csrf_token": token},
                                  headers={"Referer": server.url + "/account/second-factor"})
        assert begun.status_code == 303
        assert begun.headers["location"] == "/account/confirm?next=/account/second-factor"
    assert await server.services.second_factors.pending_totp(
        (await server.services.accounts.by_username("alice")).id, "alice") is None  # type: ignore[union-attr]
