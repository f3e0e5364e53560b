"""A whole journey, then a search for every secret it used in the audit trail and logs:
the records, and the lines the JSON log format writes from them (server and access log)."""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
import secrets
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from streamzy import logs
from streamzy.clock import ManualClock
from streamzy.config import Settings
from streamzy.guards.context import SYSTEM
from streamzy.storage.models import AuditEvent
from tests.conftest import CSRF_META, TEST_PASSWORD, LiveServer, start_server

ONE_TIME = re.compile(r'id="one-time-password"[^>]*value="([^"]*)"')
REFERENCE = re.compile(r'id="apply-reference"[^>]*value="([^"]*)"')
# Client-side libraries log the responses they receive (Set-Cookie included) at DEBUG;
# they are the test's browser, not the server.
CLIENT_LOGGERS = ("httpx", "httpcore")


class Browser:
    """An httpx client that remembers every cookie and CSRF token it was given."""

    def __init__(self, server: LiveServer, seen: set[str]) -> None:
        self.client = server.client()
        self.seen = seen

    def _remember(self, response: httpx.Response) -> httpx.Response:
        self.seen.update(value for value in response.cookies.values() if value)
        self.seen.update(CSRF_META.findall(response.text))
        return response

    async def get(self, path: str) -> httpx.Response:
        return self._remember(await self.client.get(path))

    async def post(self, path: str, data: dict[str, str], page: str) -> httpx.Response:
        token = CSRF_META.findall((await self.get(page)).text)[0]
        return self._remember(await self.client.post(path, data={**data, "csrf_token": token}))

    async def login(self, username: str, password: str) -> httpx.Response:
        return await self.post("/login", {"username": username, "password": password},
                               "/login")


async def journey(server: LiveServer, seen: set[str]) -> set[str]:
    """Apply, approve, first sign-in, change password, fail, log out: returns passwords."""
    new_password = "copper kettle " + secrets.token_hex(6)
    wrong = [f"wrong-{secrets.token_hex(6)}" for _ in range(3)]
    await server.make_user("root", admin=True)

    applicant = Browser(server, seen)
    received = await applicant.post("/apply", {
        "username": "bob", "display_name": "Bob", "email": "bob@example.org",
        "reason": "I would like to join the team chat."}, "/apply")
    assert received.status_code == 200
    reference = REFERENCE.search(received.text)
    assert reference
    assert (await applicant.post("/apply/status", {"reference": reference.group(1)},
                                 "/apply/status")).status_code == 200

    admin = Browser(server, seen)
    assert (await admin.login("root", TEST_PASSWORD)).status_code == 302
    await admin.get("/admin/applications")
    approved = await admin.post("/admin/applications/1/approve", {}, "/admin/applications")
    match = ONE_TIME.search(approved.text)
    assert match
    one_time = html.unescape(match.group(1))

    bob = Browser(server, seen)
    assert (await bob.login("bob", one_time)).status_code == 302
    changed = await bob.post("/account/password", {
        "current_password": one_time, "new_password": new_password,
        "confirm_password": new_password}, "/account/password")
    assert changed.status_code == 302
    await bob.get("/account")
    assert (await bob.post("/logout", {}, "/account")).status_code == 302

    stranger = Browser(server, seen)
    for attempt in wrong:
        assert (await stranger.login("bob", attempt)).status_code == 401
    assert (await stranger.login("nobody", wrong[0])).status_code == 401
    assert (await stranger.login("bob", new_password)).status_code == 302
    assert (await stranger.post("/logout", {}, "/account")).status_code == 302

    for browser in (applicant, admin, bob, stranger):
        await browser.client.aclose()
    assert len(await server.audit_rows("login_failed")) == 4
    return {TEST_PASSWORD, one_time, new_password, reference.group(1),
            reference.group(1).replace("-", ""), *wrong}


async def bot_calls(server: LiveServer) -> str:
    """A bot uses the JSON API with its token, and someone tries a forged one."""
    boss = await server.make_user("botkeeper", admin=True)
    _, token = await server.services.bots.create(boss.id, "pager", "Pager", [], SYSTEM)
    async with server.client() as client:
        mine = await client.get("/api/v1/rooms", headers={"Authorization": f"Bearer {token}"})
        forged = await client.get("/api/v1/rooms",
                                  headers={"Authorization": f"Bearer {token[:-4]}AAAA"})
    assert mine.status_code == 200 and forged.status_code == 401
    return token


class JsonLines(logging.Handler):
    """Every line the JSON format writes: the server's log and the access log."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logs.StreamzyFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(CLIENT_LOGGERS):
            self.lines.append(self.format(record))


def leaks(text: str, secrets_used: dict[str, str]) -> list[str]:
    return [label for label, value in secrets_used.items() if value in text]


async def test_no_secret_reaches_the_audit_trail_or_the_logs(
        settings_factory: Callable[..., Settings], caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.DEBUG)
    # Hypercorn's access atoms carry every environment variable: one holds a secret here.
    environment_secret = "env-secret-" + secrets.token_hex(16)
    monkeypatch.setenv("STREAMZY_TEST_CANARY", environment_secret)
    settings = settings_factory()
    server, shutdown = await start_server(settings, ManualClock(), access_log=True)
    # Loggers that do not propagate (the audit trail's) are captured too, as pytest does
    # for the ones that exist before a test starts.
    quiet = [logger for name, logger in logging.root.manager.loggerDict.items()
             if name.startswith("streamzy") and isinstance(logger, logging.Logger)
             and not logger.propagate]
    for logger in quiet:
        logger.addHandler(caplog.handler)
    json_lines = JsonLines()
    written_by = [logging.getLogger(), logging.getLogger("hypercorn.access"), *quiet]
    for logger in written_by:
        logger.addHandler(json_lines)
    logs.set_style("json")
    seen: set[str] = set()
    try:
        passwords = await journey(server, seen)
        bot_token = await bot_calls(server)
        async with server.services.db.unit() as db:
            rows = list((await db.execute(select(AuditEvent))).scalars())
    finally:
        await shutdown()  # flushes the audit log file
        logs.set_style("text")
        for logger in quiet:
            logger.removeHandler(caplog.handler)
        for logger in written_by:
            logger.removeHandler(json_lines)

    secrets_used = {f"password {p!r}": p for p in passwords}
    secrets_used.update({f"cookie or csrf token {v[:6]}…": v for v in seen if len(v) >= 20})
    secrets_used.update({
        "secret key": settings.secret_key.get_secret_value(),
        "pepper": settings.password_pepper.get_secret_value(),
        "bot token": bot_token,
        "bot token secret part": bot_token.rsplit("_", 1)[1],
        "environment secret": environment_secret,
        **{f"message key {i}": k.get_secret_value()
           for i, k in enumerate(settings.message_keys)},
    })
    assert len(secrets_used) >= 9 + 4 + 3  # passwords, keys, bot, env, every cookie/token seen

    assert {r.event for r in rows} >= {"application_submitted", "application_approved",
                                       "login_succeeded", "password_changed", "login_failed",
                                       "logout"}
    for row in rows:
        cells = " ".join(str(getattr(row, column.key))
                         for column in AuditEvent.__table__.columns)
        assert leaks(cells, secrets_used) == [], (row.event, cells)

    audit_file = await asyncio.to_thread(Path(settings.audit_log_path).read_text, "utf-8")
    assert audit_file.count("\n") == len(rows)
    assert leaks(audit_file, secrets_used) == []

    assert any(r.levelno == logging.DEBUG for r in caplog.records)  # DEBUG capture is live
    server_records = [r for r in caplog.records if not r.name.startswith(CLIENT_LOGGERS)]
    assert sum(r.name.startswith("streamzy.audit") for r in server_records) == len(rows)
    for record in server_records:
        text = f"{record.name} {record.getMessage()} {record.exc_text or ''}"
        assert leaks(text, secrets_used) == [], text[:500]

    # The JSON lines: each one object, the access lines among them, ids where known.
    parsed = [json.loads(line) for line in json_lines.lines]
    access = [p for p in parsed if p["logger"] == "hypercorn.access"]
    assert len(access) >= 30 and all(p["request_id"] and p["access"]["status"] for p in access)
    assert any("user_id" in p for p in access)  # signed-in requests name their user
    assert all({"time", "level", "logger", "event"} <= p.keys() for p in parsed)
    for line in json_lines.lines:
        assert leaks(line, secrets_used) == [], line[:500]
