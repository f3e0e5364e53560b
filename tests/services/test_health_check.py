"""The security health check: each item turns red (or amber) when what it watches breaks,
on the configured backend (SQLite by default, PostgreSQL with STREAMZY_TEST_BACKEND)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import update

from streamzy.config import Settings
from streamzy.services import health_items
from streamzy.services.health_items import HealthReport, Served, by_name
from streamzy.storage import system_state
from streamzy.storage.models import AuditEvent, User
from streamzy.wiring import Services, build_services
from tests.conftest import CLIENT, make_settings, make_user


async def run(services: Services) -> dict[str, health_items.HealthItem]:
    report = await services.health.run()
    assert isinstance(report, HealthReport)
    return by_name(report.items)


async def record_backup(services: Services, hours_ago: float, ok: bool = True) -> None:
    at = services.clock.now() - timedelta(hours=hours_ago)
    await system_state.write_json(services.db, system_state.BACKUP_VERIFIED,
                                  {"file": "b.szb", "at": at.isoformat(), "messages": 3,
                                   "ok": ok}, at)


async def test_no_verified_backup_fails(services: Services) -> None:
    item = (await run(services))["backup"]
    assert item.status == "fail" and "no verified backup" in item.detail


async def test_a_fresh_verified_backup_passes_a_stale_or_failed_one_fails(
        services: Services) -> None:
    await record_backup(services, 2)
    assert (await run(services))["backup"].status == "pass"
    await record_backup(services, services.settings.backup_max_age_hours + 1)
    stale = (await run(services))["backup"]
    assert stale.status == "fail" and "hours old" in stale.detail
    await record_backup(services, 1, ok=False)
    broken = (await run(services))["backup"]
    assert broken.status == "fail" and "did NOT restore" in broken.detail


async def test_audit_chain_never_verified_warns_verified_passes_old_warns(
        services: Services) -> None:
    assert (await run(services))["audit_chain"].status == "warn"
    await services.audit("login_succeeded", CLIENT, None)
    await services.audit_log.verify_chain()
    assert (await run(services))["audit_chain"].status == "pass"
    services.clock.advance(3 * 86400)
    old = (await run(services))["audit_chain"]
    assert old.status == "warn" and "3 days ago" in old.detail


async def test_a_broken_audit_chain_fails(services: Services) -> None:
    for n in range(3):
        await services.audit("login_succeeded", CLIENT, None, n=n)
    async with services.db.unit() as db:  # someone edits a stored row
        await db.execute(update(AuditEvent).where(AuditEvent.id == 2)
                         .values(detail='{"n": 99}'))
    report = await services.audit_log.verify_chain()
    assert not report.ok
    item = (await run(services))["audit_chain"]
    assert item.status == "fail" and "BROKEN at row 2" in item.detail


async def test_a_recorded_failed_verification_fails(services: Services) -> None:
    now = services.clock.now()
    await system_state.write_json(services.db, system_state.AUDIT_VERIFIED,
                                  {"at": now.isoformat(), "ok": False, "rows": 5,
                                   "first_bad": 4, "kind": "deleted"}, now)
    assert (await run(services))["audit_chain"].status == "fail"


async def test_a_room_key_no_master_key_unwraps_fails(services: Services, tmp_path: Path) -> None:
    owner = await make_user(services, "olivia")
    await services.rooms.create(owner.id, "general", "", False, CLIENT)
    assert await services.key_watch.check_keys() == 0
    assert (await run(services))["keys.unwrap"].status == "pass"
    other = build_services(make_settings(tmp_path, services.settings.database_url,
                                         message_keys=[Fernet.generate_key().decode()],
                                         audit_log_path=str(tmp_path / "other.log")),
                           services.clock)
    try:
        assert await other.key_watch.check_keys() == 1
        item = (await run(other))["keys.unwrap"]
        assert item.status == "fail" and "1 room(s)" in item.detail
    finally:
        await other.close()


async def test_an_old_room_key_warns(services: Services) -> None:
    owner = await make_user(services, "olivia")
    await services.rooms.create(owner.id, "general", "", False, CLIENT)
    assert (await run(services))["keys.age"].status == "pass"
    services.clock.advance((services.settings.key_max_age_days + 1) * 86400)
    item = (await run(services))["keys.age"]
    assert item.status == "warn" and "rotate-keys" in item.detail


async def test_an_admin_without_a_second_factor(services: Services) -> None:
    admin = await make_user(services, "ada", admin=True)
    await make_user(services, "bob")
    item = (await run(services))["second_factor.admins"]
    assert item.status == "fail" and "admins 0/1" in item.detail
    async with services.db.unit() as db:
        await system_state.write(db, system_state.SECOND_FACTOR_POLICY, "admins",
                                 services.clock.now())
    assert (await run(services))["second_factor.admins"].status == "warn"
    async with services.db.unit() as db:
        await db.execute(update(User).where(User.id == admin.id).values(has_second_factor=True))
    item = (await run(services))["second_factor.admins"]
    assert item.status == "pass" and "active accounts 1/2" in item.detail


async def test_without_a_probe_the_served_items_warn(services: Services) -> None:
    items = await run(services)
    assert items["served.cookies"].status == "warn"
    assert items["served.headers"].status == "warn"


def production(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "env": "production", "secret_key": "s3cret-" + "k" * 10 + "abcdefghijklmnopqrstuvwxyz",
        "password_pepper": "p3pper-" + "q" * 10 + "abcdefghijklmnopqrstuvwxyz",
        "message_keys": [Fernet.generate_key().decode()], "cookie_secure": True,
        "allowed_origins": ["https://chat.example.org"], **overrides}
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


GOOD_HEADERS = [
    ("content-security-policy", "default-src 'self'; script-src 'self'; frame-ancestors 'none'"),
    ("x-frame-options", "DENY"), ("x-content-type-options", "nosniff"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    ("strict-transport-security", "max-age=63072000; includeSubDomains"),
]


def test_cookies_as_served_without_secure_fail_in_production() -> None:
    settings = production()
    good = Served("https://chat.example.org/login", 200, [
        *GOOD_HEADERS,
        ("set-cookie", "__Host-streamzy_anon=abc; HttpOnly; Path=/; SameSite=Lax; Secure")])
    assert [i.status for i in health_items.served_items(good, settings)] == ["pass", "pass"]
    insecure = Served("https://chat.example.org/login", 200, [
        *GOOD_HEADERS, ("set-cookie", "streamzy_anon=abc; HttpOnly; Path=/; SameSite=Lax")])
    cookies = health_items.served_items(insecure, settings)[0]
    assert cookies.status == "fail"
    assert "not Secure" in cookies.detail and "no __Host- prefix" in cookies.detail
    script_readable = Served("https://chat.example.org/login", 200, [
        *GOOD_HEADERS, ("set-cookie", "__Host-x=1; Path=/; SameSite=None; Secure")])
    detail = health_items.served_items(script_readable, settings)[0].detail
    assert "not HttpOnly" in detail and "SameSite=none" in detail


@pytest.mark.parametrize("drop", ["content-security-policy", "x-content-type-options",
                                  "referrer-policy", "strict-transport-security"])
def test_each_missing_header_fails(drop: str) -> None:
    served = Served("https://chat.example.org/login", 200,
                    [h for h in GOOD_HEADERS if h[0] != drop])
    item = health_items.served_items(served, production())[1]
    assert item.status == "fail"


def test_production_settings_items() -> None:
    items = by_name(health_items.settings_items(production()))
    assert {n: i.status for n, i in items.items() if n != "settings.backup_key"} == {
        "settings.mode": "pass", "settings.secrets": "pass", "settings.cookies": "pass",
        "settings.proxy": "pass", "settings.origins": "pass", "settings.passwords": "pass"}
    weak = by_name(health_items.settings_items(production(cookie_secure=False, trusted_hops=5,
                                                          allowed_origins=[])))
    assert weak["settings.cookies"].status == "fail"
    assert weak["settings.proxy"].status == "warn"
    assert weak["settings.origins"].status == "warn"


def test_a_known_bad_dependency_version_fails() -> None:
    real = health_items.installed_version
    assert health_items.dependency_item(real).status == "pass"
    item = health_items.dependency_item(lambda p: "0.14.0" if p == "h11" else real(p))
    assert item.status == "fail" and "GHSA-vqfr-h8mv-ghfj" in item.detail and "h11 0.14.0" in item.detail
    assert health_items.dependency_item(lambda p: "3.0.0" if p == "werkzeug" else None).status \
        == "fail"


def test_the_shipped_list_parses_and_names_real_advisories() -> None:
    listing = health_items.known_bad()
    entries = [e for v in listing["packages"].values() for e in v]
    assert len(entries) >= 5
    assert all(e["advisory"].startswith("GHSA-") and e["versions"] for e in entries)


def test_the_score_weighs_warnings_half() -> None:
    report = HealthReport([health_items.HealthItem("a", "A", "pass", "", 2),
                           health_items.HealthItem("b", "B", "warn", "", 2),
                           health_items.HealthItem("c", "C", "fail", "", 4)],
                          datetime(2030, 1, 1, tzinfo=UTC))
    assert report.score == 38 and report.failed
