"""The audit trail without a server: one row and one JSON line per event, with every field,
and never a secret."""

from __future__ import annotations

import json
from pathlib import Path

from streamzy.clock import ManualClock, as_utc
from streamzy.guards.audit import AuditLog, scrub
from streamzy.guards.audit_chain import derive_key
from streamzy.guards.context import RequestInfo
from streamzy.wiring import Services
from tests.conftest import CLIENT, audit_rows

SECRET = "hunter2-do-not-log-me"


def log_lines(services: Services) -> list[dict]:
    services.audit_log.close()  # flushes the background writer
    path = Path(services.settings.audit_log_path)
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


async def test_an_event_is_one_row_and_one_json_line_with_every_field(
        services: Services, clock: ManualClock) -> None:
    clock.advance(42)
    await services.audit("login_failed", CLIENT, 7, reason="bad_password", failures=2)
    [row] = await audit_rows(services)
    assert (row.event, row.user_id, row.client_ip, row.user_agent, row.request_id) == (
        "login_failed", 7, CLIENT.ip, CLIENT.user_agent, CLIENT.request_id)
    assert as_utc(row.at) == clock.now()
    assert json.loads(row.detail) == {"reason": "bad_password", "failures": 2}
    [line] = log_lines(services)
    assert line == {"time": clock.now().isoformat(), "event": "login_failed", "user_id": 7,
                    "ip": CLIENT.ip, "user_agent": CLIENT.user_agent,
                    "request_id": CLIENT.request_id,
                    "detail": {"reason": "bad_password", "failures": 2},
                    "chain": row.chain}  # the line anchors the row's chain value outside
    assert row.chain and len(row.chain) == 64
    assert line["time"].endswith("+00:00")  # UTC


async def test_secrets_never_reach_the_row_or_the_file(services: Services) -> None:
    await services.audit("password_changed", CLIENT, 7, password=SECRET, new_password=SECRET,
                         session_token=SECRET, csrf_token=SECRET, Authorization=SECRET,
                         cookie=SECRET, pepper=SECRET, client_secret=SECRET, kept="visible")
    [row] = await audit_rows(services)
    detail = json.loads(row.detail)
    assert detail["kept"] == "visible"
    assert {k: v for k, v in detail.items() if k != "kept"} == dict.fromkeys(
        ["password", "new_password", "session_token", "csrf_token", "Authorization", "cookie",
         "pepper", "client_secret"], "[redacted]")
    assert SECRET not in row.detail
    [line] = log_lines(services)
    assert line["detail"] == detail
    assert SECRET not in Path(services.settings.audit_log_path).read_text("utf-8")


def test_values_are_escaped_and_capped() -> None:
    clean = scrub({"name": "evil\n{\"event\": \"forged\"}\x1b[31m", "long": "x" * 5000,
                   "count": 3, "flag": True, "none": None})
    assert "\n" not in clean["name"] and "\x1b" not in clean["name"]
    assert clean["name"].startswith("evil\\n")
    assert len(clean["long"]) == 500
    assert (clean["count"], clean["flag"], clean["none"]) == (3, True, None)


async def test_a_hostile_user_agent_cannot_forge_a_log_line(services: Services) -> None:
    info = RequestInfo.from_scope({"client": ("198.51.100.4", 1234), "headers": [
        (b"user-agent", b'curl\n{"event": "login_succeeded"}')]})
    await services.audit("login_failed", info, None)
    lines = log_lines(services)
    assert len(lines) == 1 and lines[0]["event"] == "login_failed"
    assert lines[0]["ip"] == "198.51.100.4" and "\n" not in lines[0]["user_agent"]


async def test_throttled_events_are_recorded_once_a_minute_per_key(
        services: Services, clock: ManualClock) -> None:
    for _ in range(5):
        await services.audit_throttled("flood:1", "rate_limited", CLIENT, 1)
    await services.audit_throttled("flood:2", "rate_limited", CLIENT, 2)
    clock.advance(59)
    await services.audit_throttled("flood:1", "rate_limited", CLIENT, 1)
    assert [r.user_id for r in await audit_rows(services)] == [1, 2]
    clock.advance(1)
    await services.audit_throttled("flood:1", "rate_limited", CLIENT, 1)
    rows = await audit_rows(services)
    # flood:1's first window ended with 5 repeats: its count row, then the new window's row
    assert [r.user_id for r in rows] == [1, 2, 1, 1]
    assert '"repeated": 5' in rows[2].detail and "repeated" not in rows[3].detail


async def test_without_a_path_only_the_database_is_written(services: Services) -> None:
    audit = AuditLog(services.db, services.clock, "", chain_key=derive_key("k" * 40))
    try:
        await audit.record("logout", CLIENT, 3)
    finally:
        audit.close()
    assert [r.event for r in await audit_rows(services)] == ["logout"]
