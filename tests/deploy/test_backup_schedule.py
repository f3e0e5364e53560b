"""The backup schedule as shipped: deploy/systemd/streamzy-backup.service's ExecStart, run
as written (install paths mapped to this checkout) against a real database, keeps the
newest N, and what it wrote restores."""

from __future__ import annotations

import configparser
import shlex
from collections.abc import Callable
from pathlib import Path

from streamzy.clock import ManualClock
from streamzy.config import Settings
from streamzy.storage import system_state
from streamzy.storage.db import Database
from streamzy.wiring import build_services
from tests.conftest import CLIENT
from tests.storage.backup_fixtures import (
    ROOT,
    SECRET_TEXTS,
    backup_key,  # noqa: F401 - a fixture
    cli_env,
    empty_target,  # noqa: F401 - a fixture
    populate,
    run,
    streamzy,
)

UNITS = ROOT / "deploy" / "systemd"


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / name)
    return parser


def test_the_timer_runs_the_service_daily_and_catches_up() -> None:
    timer = unit("streamzy-backup.timer")["Timer"]
    assert timer["Unit"] == "streamzy-backup.service"
    assert timer["OnCalendar"].startswith("*-*-* ")
    assert timer["Persistent"] == "true"
    service = unit("streamzy-backup.service")["Service"]
    assert service["Type"] == "oneshot" and service["UMask"] == "0077"


async def test_the_units_exec_start_backs_up_verifies_prunes_and_restores(
        settings_factory: Callable[..., Settings], backup_key: str,  # noqa: F811
        clock: ManualClock, tmp_path: Path, empty_target: str) -> None:  # noqa: F811
    settings = settings_factory(backup_key=backup_key)
    services = build_services(settings, clock)
    try:
        await populate(services)
    finally:
        await services.close()

    command = shlex.split(unit("streamzy-backup.service")["Service"]["ExecStart"])
    script, binary, directory, keep = command
    backups_dir = tmp_path / "backups"
    mapped = [script.replace("/opt/streamzy", str(ROOT)),
              binary.replace("/opt/streamzy", str(ROOT)),
              directory.replace("/var/backups/streamzy", str(backups_dir)), keep]
    assert mapped[2] != directory and mapped[0] != script and mapped[1] != binary
    # Older backups already there: after this run only the newest ``keep`` remain.
    backups_dir.mkdir()
    old = [backups_dir / f"streamzy-2020010{d}T031700Z.backup" for d in range(1, 10)]
    old += [backups_dir / f"streamzy-202002{d:02d}T031700Z.backup" for d in range(10, 20)]
    for path in old:
        path.write_bytes(b"an older backup")

    result = run(mapped, cli_env(settings), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verified:" in result.stdout
    kept = sorted(p.name for p in backups_dir.iterdir())
    assert len(kept) == int(keep)
    new = [backups_dir / name for name in kept if (backups_dir / name) not in old]
    assert len(new) == 1 and new[0].stat().st_mode & 0o777 == 0o600
    assert kept[:-1] == sorted(p.name for p in old)[-(int(keep) - 1):]  # the oldest went

    live = Database(settings.database_url)
    try:
        recorded = await system_state.read_json(live, system_state.BACKUP_VERIFIED)
    finally:
        await live.dispose()
    assert recorded is not None and recorded["ok"] is True
    assert recorded["file"] == new[0].name and recorded["messages"] == 4

    restored = streamzy(settings, tmp_path, "restore", str(new[0]), "--database-url",
                        empty_target)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    target = build_services(settings.model_copy(update={"database_url": empty_target}), clock)
    try:
        room = await target.rooms.by_name("general")
        assert room is not None
        messages, _ = await target.history.page(room.id, None, 10, CLIENT)
        assert SECRET_TEXTS[0] in [m.text for m in messages]
    finally:
        await target.close()


async def test_a_failed_backup_keeps_the_older_ones(
        settings_factory: Callable[..., Settings], tmp_path: Path) -> None:
    settings = settings_factory()  # no backup key: `streamzy backup` refuses
    backups_dir = tmp_path / "backups"
    backups_dir.mkdir()
    older = backups_dir / "streamzy-20200101T031700Z.backup"
    older.write_bytes(b"an older backup")
    result = run([str(ROOT / "scripts" / "backup-rotate.sh"), str(ROOT / ".venv/bin/streamzy"),
                  str(backups_dir), "1"], cli_env(settings), tmp_path)
    assert result.returncode == 1
    assert "STREAMZY_BACKUP_KEY" in result.stderr
    assert [p.name for p in backups_dir.iterdir()] == [older.name]
