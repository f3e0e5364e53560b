"""Security headers on every kind of response, request ids, caching, HSTS, health."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

import httpx
from cryptography.fernet import Fernet
from sqlalchemy import text

from streamzy.clock import ManualClock
from streamzy.config import Settings
from tests.conftest import CSRF_META, TEST_PASSWORD, LiveServer, login, start_server

HSTS = "strict-transport-security"


def assert_secure_headers(response: httpx.Response) -> None:
    where = f"{response.request.method} {response.request.url.path} -> {response.status_code}"
    csp = response.headers.get("content-security-policy", "")
    directives = {part.strip().split(" ")[0]: part.strip() for part in csp.split(";")}
    assert directives.get("script-src") == "script-src 'self'", where
    assert directives.get("object-src") == "object-src 'none'", where
    assert directives.get("base-uri") == "base-uri 'none'", where
    assert directives.get("frame-ancestors") == "frame-ancestors 'none'", where
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp, where
    assert response.headers.get("x-frame-options") == "DENY", where
    assert response.headers.get("x-content-type-options") == "nosniff", where
    assert response.headers.get("referrer-policy") == "strict-origin-when-cross-origin", where
    assert "camera=()" in response.headers.get("permissions-policy", ""), where
    assert response.headers.get("x-xss-protection") == "0", where
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers.get("x-request-id", "")), where
    assert "Traceback" not in response.text, where


async def test_every_kind_of_response_carries_the_headers(server: LiveServer) -> None:
    await server.make_user("alice")
    responses: list[httpx.Response] = []
    async with server.client() as client:
        responses.append(await client.get("/login"))
        responses.append(await client.get("/"))
        responses.append(await client.get("/no/such/page"))
        responses.append(await client.post("/login", data={"username": "a", "password": "b"}))
        responses.append(await client.request("DELETE", "/login"))
        responses.append(await client.get("/healthz"))
        responses.append(await client.get("/static/app.css"))
        responses.append(await client.get("/static/%2e%2e/pyproject.toml"))
        await login(client, "alice")
        responses.append(await client.get("/account"))
        responses.append(await client.get("/logout"))
        for _ in range(12):
            last = await client.post("/login", data={"username": "a", "password": "b"})
        responses.append(last)
    statuses = [r.status_code for r in responses]
    assert statuses == [200, 200, 404, 403, 405, 200, 200, 404, 200, 405, 429]
    for response in responses:
        assert_secure_headers(response)
        assert HSTS not in response.headers  # development serves plain HTTP
    ids = [r.headers["x-request-id"] for r in responses]
    assert len(set(ids)) == len(ids)
    assert responses[-1].headers["retry-after"].isdigit()


async def test_pages_are_not_cached_but_static_files_are(server: LiveServer) -> None:
    await server.make_user("alice")
    async with server.client() as client:
        await login(client, "alice")
        for path in ("/account", "/account/password", "/login", "/nope"):
            response = await client.get(path)
            assert response.headers["cache-control"] == "no-store", path
        static = await client.get("/static/app.css")
    assert static.status_code == 200
    assert static.headers["content-type"].startswith("text/css")
    assert "no-store" not in static.headers["cache-control"]
    assert "camera=()" in static.headers["permissions-policy"]


async def test_server_errors_show_no_traceback(server: LiveServer) -> None:
    await server.make_user("root", admin=True)
    async with server.client() as client:
        await login(client, "root")
        async with server.services.db.unit() as db:  # a corrupt row: a bug, not an outage
            await db.execute(text("UPDATE audit_events SET detail = '{garbage-not-json'"))
        page = await client.get("/admin/audit", params={"format": "json"})
        api = await client.get("/admin/audit", params={"format": "csv"},
                               headers={"Accept": "application/json"})
    assert page.status_code == api.status_code == 500
    assert_secure_headers(page)
    assert "Something went wrong on our side" in page.text
    for body in (page.text, api.text):
        assert "Traceback" not in body and "garbage-not-json" not in body
        assert "JSONDecodeError" not in body and "line 1 column" not in body
    assert api.json() == {"ok": False, "code": "internal_error",
                          "message": "Something went wrong on our side. It has been logged."}
    assert page.headers["x-request-id"] in page.text  # so a user can quote it


async def test_health_and_readiness(server: LiveServer) -> None:
    async with server.client() as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
    assert health.status_code == 200 and health.json() == {"ok": True}
    assert ready.status_code == 200 and ready.json() == {
        "ok": True, "database": "up", "storage": "writable", "audit_write_failures": 0,
        "keys": "usable"}
    assert_secure_headers(ready)


def _production(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(env="production", cookie_secure=True, bcrypt_rounds=12,
                            secret_key=secrets.token_urlsafe(48),
                            password_pepper=secrets.token_urlsafe(48),
                            message_keys=[Fernet.generate_key().decode()])


async def test_production_adds_hsts_and_host_prefixed_secure_cookies(
        settings_factory: Callable[..., Settings]) -> None:
    server, shutdown = await start_server(_production(settings_factory), ManualClock())
    try:
        await server.make_user("alice")
        async with server.client() as client:
            form = await client.get("/login")
            anon = form.cookies["__Host-streamzy_anon"]
            set_anon = form.headers["set-cookie"]
            match = CSRF_META.search(form.text)
            assert match
            # httpx (rightly) keeps Secure cookies off plain HTTP; a TLS proxy would not.
            client.cookies.clear()
            signed_in = await client.post(
                "/login", data={"username": "alice", "password": TEST_PASSWORD,
                                "csrf_token": match.group(1)},
                headers={"Cookie": f"__Host-streamzy_anon={anon}"})
            assert signed_in.status_code == 302
            cookie = signed_in.headers["set-cookie"]
            session = signed_in.cookies["__Host-streamzy_session"]
            client.cookies.clear()
            account = await client.get("/account",
                                       headers={"Cookie": f"__Host-streamzy_session={session}"})
    finally:
        await shutdown()
    for header in (set_anon, cookie):
        assert header.startswith("__Host-streamzy_")
        attributes = [part.strip() for part in header.split(";")]
        assert "Secure" in attributes and "HttpOnly" in attributes and "Path=/" in attributes
        assert not any(a.lower().startswith("domain=") for a in attributes)
    assert "streamzy_session=" not in cookie.replace("__Host-streamzy_session=", "")
    assert account.status_code == 200 and "alice" in account.text
    for response in (form, signed_in, account):
        assert_secure_headers(response)
        assert response.headers[HSTS] == "max-age=63072000; includeSubDomains"
    assert account.headers["cache-control"] == "no-store"
