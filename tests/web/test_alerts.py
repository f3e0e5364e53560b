"""Alerts through the real app: failed sign-ins over HTTP cross a threshold, an audit
``alert`` row is written, the admin banner shows it, and a signed webhook reaches a local
receiver on 127.0.0.1: once per cool-down (no storm), retried with backoff, and never
stalling the app when the receiver hangs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from streamzy.guards.context import RequestInfo
from tests.conftest import LiveServer, csrf_of, login, post_form
from tests.waiting import wait_until
from tests.web.webhook_receiver import SECRET, Receiver, start_receiver

THRESHOLD = 5


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found, runner = await start_receiver()
    try:
        yield found
    finally:
        found.release.set()
        await runner.cleanup()


@pytest.fixture
def server_settings(receiver: Receiver) -> dict[str, Any]:
    return {"alert_failed_signins_per_address": f"{THRESHOLD}/10m",
            "alert_failed_signins_per_account": "off", "alert_lockouts": "off",
            "rate_login": "1000/5m", "lockout_threshold": 1000,
            "alert_webhook_url": receiver.url, "alert_webhook_secret": SECRET,
            "alert_webhook_backoff_seconds": 0.01, "alert_webhook_retries": 3,
            "alert_webhook_timeout_seconds": 0.5}


async def fail_sign_ins(server: LiveServer, times: int) -> None:
    async with server.client() as client:
        token = await csrf_of(client)
        for _ in range(times):
            response = await client.post("/login", data={
                "username": "victim", "password": "not the password", "csrf_token": token})
            assert response.status_code == 401
    await server.services.alerts.settled()


async def test_failed_sign_ins_fire_one_signed_webhook_and_an_audit_row(
        server: LiveServer, receiver: Receiver) -> None:
    await server.make_user("victim")
    await fail_sign_ins(server, THRESHOLD - 1)
    assert receiver.requests == [] and await server.audit_rows("alert") == []
    await fail_sign_ins(server, 1)
    [hook] = receiver.requests
    assert hook.signed_by(SECRET) and not hook.signed_by("another secret of some length")
    assert int(hook.timestamp) == int(server.clock.now().timestamp())
    body = hook.payload
    assert body["type"] == "streamzy.alert" and body["kind"] == "failed_signins_per_address"
    assert body["key"] == "127.0.0.1" and body["count"] == THRESHOLD
    assert body["threshold"] == THRESHOLD and body["window_seconds"] == 600
    assert body["suppressed"] == 0
    [row] = await server.audit_rows("alert")
    detail = json.loads(row.detail)
    assert detail["kind"] == "failed_signins_per_address" and detail["count"] == THRESHOLD


async def test_a_storm_sends_one_webhook_and_the_next_counts_what_was_held_back(
        server: LiveServer, receiver: Receiver) -> None:
    await server.make_user("victim")
    await fail_sign_ins(server, 50)
    assert len(receiver.requests) == 1
    assert len(await server.audit_rows("alert")) == 1
    server.clock.advance(server.services.settings.alert_cooldown_seconds + 1)
    await fail_sign_ins(server, THRESHOLD)
    assert len(receiver.requests) == 2
    assert receiver.requests[1].payload["suppressed"] == 50 - THRESHOLD


async def test_a_failing_receiver_is_retried_with_backoff_until_it_answers(
        server: LiveServer, receiver: Receiver) -> None:
    receiver.script = [500, 500, 200]
    await server.make_user("victim")
    await fail_sign_ins(server, THRESHOLD)
    assert len(receiver.requests) == 3  # two refusals, then delivered
    assert len({r.payload["id"] for r in receiver.requests}) == 1  # the same alert each time
    webhook = server.services.alerts.webhook
    assert webhook is not None and webhook.delivered == 1 and webhook.failed == 0


async def test_a_hanging_receiver_never_stalls_the_app(server: LiveServer,
                                                       receiver: Receiver) -> None:
    receiver.script = ["hang"] * 10
    await server.make_user("victim")
    async with server.client() as client:
        token = await csrf_of(client)
        for _ in range(THRESHOLD):
            await client.post("/login", data={"username": "victim", "password": "wrong one",
                                              "csrf_token": token})
        await wait_until(lambda: receiver.requests, what="the first delivery attempt")
        # The webhook is stuck waiting on the receiver; the app answers meanwhile.
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/login")).status_code == 200
    await server.services.alerts.settled()  # every attempt timed out, then it gave up
    webhook = server.services.alerts.webhook
    assert webhook is not None and webhook.failed == 1 and webhook.delivered == 0
    assert len(receiver.requests) == 4  # the first attempt and 3 retries
    [gave_up] = await server.audit_rows("alert_webhook_failed")
    assert "TimeoutError" in gave_up.detail or "Timeout" in gave_up.detail
    assert len(await server.audit_rows("alert")) == 1


async def test_the_banner_shows_the_alert_until_acknowledged(server: LiveServer) -> None:
    await server.make_user("victim")
    await server.make_user("ada", admin=True)
    await fail_sign_ins(server, THRESHOLD)
    async with server.client() as admin:
        assert (await login(admin, "ada")).status_code in (302, 303)
        page = await admin.get("/admin/users")
        assert 'id="alert-banner"' in page.text
        assert "failed signins per address" in page.text and "127.0.0.1" in page.text
        assert 'id="alert-banner"' not in (await admin.get("/rooms")).text  # console only
        done = await post_form(admin, "/admin/alerts/acknowledge", page="/admin/users")
        assert done.status_code in (302, 303)
        assert 'id="alert-banner"' not in (await admin.get("/admin/users")).text
    assert len(await server.audit_rows("alerts_acknowledged")) == 1


async def test_refused_sockets_count_each_refusal_not_only_the_audited_ones(
        server: LiveServer) -> None:
    """Refusals are audited throttled (one row per window); the alert still sees each."""
    alerts = server.services.alerts
    for _ in range(3):
        await server.services.audit_throttled("refused:198.51.100.7:x", "socket_refused",
                                              _info("198.51.100.7"), None, reason="x")
    await alerts.settled()
    assert len(await server.audit_rows("socket_refused")) == 1
    counts = alerts._counts  # the count itself is what this test is about
    now = server.clock.now().timestamp()
    assert await counts.hit("refused_sockets:198.51.100.7", now, 300) == 4


def _info(ip: str) -> RequestInfo:
    return RequestInfo(ip, "tests", "")



async def test_admin_pages_answer_when_the_banner_cannot_be_read(server: LiveServer) -> None:
    from sqlalchemy import text
    await server.make_user("root", admin=True)
    async with server.client() as admin:
        await login(admin, "root")
        async with server.services.db.unit() as db:
            await db.execute(text("ALTER TABLE audit_events RENAME TO audit_events_away"))
        try:
            page = await admin.get("/admin/users")
        finally:
            async with server.services.db.unit() as db:
                await db.execute(text("ALTER TABLE audit_events_away RENAME TO audit_events"))
    assert page.status_code == 200  # the banner is left out, the page still serves


async def test_closed_alerts_start_no_new_work(server: LiveServer) -> None:
    alerts = server.services.alerts
    await alerts.close()
    alerts.observe("login_failed", None, "198.51.100.7", {})
    assert alerts._worker is None
