"""``streamzy audit verify`` and ``streamzy audit purge`` as real processes, against the
test database (SQLite or PostgreSQL): each kind of tampering gives exit 1 and names the row."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, update

from streamzy.clock import ManualClock
from streamzy.config import Settings
from streamzy.storage.backup_file import new_backup_key
from streamzy.storage.models import AuditEvent, SystemState
from streamzy.storage.system_state import AUDIT_HEAD
from streamzy.wiring import Services, build_services
from tests.conftest import audit_rows
from tests.guards.test_audit_chain import change, forge, record

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(audit_retention_days=30, message_retention_days=7)


@pytest.fixture
async def services(settings: Settings, clock: ManualClock) -> AsyncIterator[Services]:
    clock.set(datetime(2024, 1, 1, tzinfo=UTC))  # long before the real clock of the CLI
    built = build_services(settings, clock)
    try:
        yield built
    finally:
        await built.close()


async def streamzy(settings: Settings, cwd: Path, *args: str,
                   **env_overrides: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMZY_")}
    env.update(
        PYTHONPATH=str(ROOT), STREAMZY_DATABASE_URL=settings.database_url,
        STREAMZY_SECRET_KEY=settings.secret_key.get_secret_value(),
        STREAMZY_PASSWORD_PEPPER=settings.password_pepper.get_secret_value(),
        STREAMZY_MESSAGE_KEYS=",".join(k.get_secret_value() for k in settings.message_keys),
        STREAMZY_AUDIT_LOG_PATH=str(cwd / "cli-audit.log"),
        STREAMZY_AUDIT_RETENTION_DAYS=str(settings.audit_retention_days),
        STREAMZY_MESSAGE_RETENTION_DAYS=str(settings.message_retention_days),
        # Every generated secret given: development mode then writes nothing into .env
        # and says nothing about it on stdout.
        STREAMZY_BACKUP_KEY=new_backup_key())
    env.update(env_overrides)
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "streamzy.cli", *args], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=120, check=False)


async def test_an_untouched_chain_exits_0_and_is_recorded(
        services: Services, settings: Settings, tmp_path: Path) -> None:
    ids = await record(services, 5)
    done = await streamzy(settings, tmp_path, "audit", "verify")
    assert (done.returncode, done.stdout.strip()) == (
        0, f"chain intact: 5 rows, up to id {ids[-1]}"), done.stderr
    last = await services.audit_log.last_verification()
    assert last is not None and last.report.ok and last.report.rows == 5
    [verified] = await audit_rows(services, "audit_chain_verified")
    assert json.loads(verified.detail) == {"rows": 5, "last_id": ids[-1]}
    again = await streamzy(settings, tmp_path, "audit", "verify")  # its own row verifies too
    assert again.returncode == 0 and "chain intact: 6 rows" in again.stdout


async def _tamper(services: Services, kind: str, ids: list[int]) -> int:
    """Tamper as ``kind`` says; the row verification must name."""
    if kind == "edited":
        await change(services, update(AuditEvent).where(AuditEvent.id == ids[2])
                     .values(detail='{"attempt": 42}'))
        return ids[2]
    if kind == "inserted":
        forged = await forge(services, "ab" * 32)
        await record(services, 2)
        return forged
    if kind == "deleted":
        await change(services, delete(AuditEvent).where(AuditEvent.id == ids[2]))
        return ids[3]
    if kind == "truncated":
        await change(services, delete(AuditEvent).where(AuditEvent.id > ids[3]))
        return ids[-1]
    async with services.db.unit() as db:  # head: claim the chain ends earlier
        head = await db.get(SystemState, AUDIT_HEAD)
        assert head is not None
        value: dict[str, Any] = json.loads(head.value)
        value["id"] = ids[3]
        head.value = json.dumps(value)
    return ids[-1]  # reported at the last row: the one the head should name


@pytest.mark.parametrize("kind", ["edited", "inserted", "deleted", "truncated", "head"])
async def test_each_kind_of_tampering_exits_1_naming_the_row(
        services: Services, settings: Settings, tmp_path: Path, kind: str) -> None:
    ids = await record(services, 6)
    bad = await _tamper(services, kind, ids)
    done = await streamzy(settings, tmp_path, "audit", "verify")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.startswith(f"chain BROKEN at row {bad}: {kind} ("), done.stdout
    assert "Traceback" not in done.stderr
    last = await services.audit_log.last_verification()
    assert last is not None and (last.report.ok, last.report.first_bad, last.report.kind) == (
        False, bad, kind)
    [broken] = await audit_rows(services, "audit_chain_broken")
    assert json.loads(broken.detail)["kind"] == kind
    log = (tmp_path / "cli-audit.log").read_text("utf-8")
    assert '"event": "audit_chain_broken"' in log


async def test_purge_dry_run_then_purge(services: Services, settings: Settings,
                                        tmp_path: Path) -> None:
    await record(services, 4)  # dated 2024: older than 30 days for the CLI's real clock
    dry = await streamzy(settings, tmp_path, "audit", "purge", "--dry-run")
    assert dry.returncode == 0 and dry.stdout.startswith("would purge 4 audit rows"), dry.stdout
    assert len(await audit_rows(services)) == 4
    done = await streamzy(settings, tmp_path, "audit", "purge")
    assert done.returncode == 0 and done.stdout.startswith("purged 4 audit rows"), done.stdout
    assert [r.event for r in await audit_rows(services)] == ["audit_purged"]
    verify = await streamzy(settings, tmp_path, "audit", "verify")
    assert verify.returncode == 0 and "chain intact: 1 rows" in verify.stdout


async def test_purge_with_retention_off_says_so(services: Services, settings: Settings,
                                                tmp_path: Path) -> None:
    await record(services, 2)
    done = await streamzy(settings, tmp_path, "audit", "purge",
                          STREAMZY_AUDIT_RETENTION_DAYS="0")
    assert done.returncode == 0 and "retention is off" in done.stdout
    assert len(await audit_rows(services)) == 2


async def test_an_unreadable_database_is_a_clear_error(settings: Settings,
                                                       tmp_path: Path) -> None:
    done = await streamzy(settings, tmp_path, "audit", "verify",
                          STREAMZY_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/no/such/dir.db")
    assert done.returncode == 2
    assert done.stderr.startswith("streamzy: the audit trail cannot be read")
    assert "Traceback" not in done.stderr
