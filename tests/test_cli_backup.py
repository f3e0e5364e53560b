"""`streamzy backup`, `restore`, `export` and `gen-key --backup` as real processes: exit
codes, one clear line on failure (never a traceback), nothing replaced that did not verify."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet

from streamzy.clock import ManualClock
from streamzy.config import Settings
from streamzy.storage.backup_file import parse_backup_key
from streamzy.wiring import build_services
from tests.conftest import audit_rows
from tests.storage.backup_fixtures import (
    ROOT,
    SECRET_TEXTS,
    backup_key,  # noqa: F401 - a fixture
    empty_target,  # noqa: F401 - a fixture
    populate,
    streamzy,
)


async def _populated(settings: Settings, clock: ManualClock) -> None:
    services = build_services(settings, clock)
    try:
        await populate(services)
    finally:
        await services.close()


def _clean_failure(result: subprocess.CompletedProcess[str], words: str) -> None:
    assert result.returncode != 0
    assert words in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_gen_key_backup_prints_a_backup_key(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "streamzy.cli", "gen-key", "--backup"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, check=True)
    assert len(parse_backup_key(out.stdout.strip())) == 32


def test_development_generates_a_backup_key_into_env(tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "STREAMZY_BCRYPT_ROUNDS": "4",
           "STREAMZY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"}
    subprocess.run([sys.executable, "-m", "streamzy.cli", "init"], cwd=tmp_path, env=env,
                   capture_output=True, text=True, timeout=120, check=True)
    values = dict(line.split("=", 1) for line in (tmp_path / ".env").read_text().splitlines())
    key = values["STREAMZY_BACKUP_KEY"]
    assert len(parse_backup_key(key)) == 32
    assert key not in values["STREAMZY_MESSAGE_KEYS"]


def test_check_config_warns_about_a_missing_backup_key(
        settings_factory: Callable[..., Settings], tmp_path: Path) -> None:
    result = streamzy(settings_factory(), tmp_path, "check-config", STREAMZY_BACKUP_KEY="")
    assert "[WARN] STREAMZY_BACKUP_KEY is not set" in result.stdout


def test_production_refuses_a_backup_without_a_key(
        settings_factory: Callable[..., Settings], tmp_path: Path) -> None:
    result = streamzy(settings_factory(), tmp_path, "backup", str(tmp_path / "b.backup"))
    _clean_failure(result, "STREAMZY_BACKUP_KEY is not set")
    assert list(tmp_path.glob("b.backup*")) == []


async def test_backup_then_restore_with_the_wrong_master_key_exits_non_zero(
        settings_factory: Callable[..., Settings], backup_key: str,  # noqa: F811
        clock: ManualClock, tmp_path: Path, empty_target: str) -> None:  # noqa: F811
    settings = settings_factory(backup_key=backup_key)
    await _populated(settings, clock)
    out = tmp_path / "b.backup"
    made = streamzy(settings, tmp_path, "backup", str(out), "--verify")
    assert made.returncode == 0, made.stderr
    assert "5 messages" in made.stdout and "verified: 6 sealed rows" in made.stdout

    wrong = streamzy(settings, tmp_path, "restore", str(out), "--database-url", empty_target,
                     STREAMZY_MESSAGE_KEYS=Fernet.generate_key().decode())
    _clean_failure(wrong, "6 of 6 sealed rows did not decrypt")
    assert "restored" not in wrong.stdout

    flipped = bytearray(out.read_bytes())
    flipped[-40] ^= 1
    bad = tmp_path / "bad.backup"
    bad.write_bytes(bytes(flipped))
    _clean_failure(streamzy(settings, tmp_path, "restore", str(bad), "--database-url",
                            empty_target), "altered or damaged")

    right = streamzy(settings, tmp_path, "restore", str(out), "--database-url", empty_target)
    assert right.returncode == 0, right.stderr
    assert "restored:" in right.stdout
    again = streamzy(settings, tmp_path, "restore", str(out), "--database-url", empty_target)
    _clean_failure(again, "--force")


async def test_export_commands_write_json_and_are_audited(
        settings_factory: Callable[..., Settings], clock: ManualClock, tmp_path: Path) -> None:
    settings = settings_factory()
    await _populated(settings, clock)
    mine = streamzy(settings, tmp_path, "export", "--user", "bob", "--output",
                    str(tmp_path / "bob.json"))
    assert mine.returncode == 0, mine.stderr
    bob = json.loads((tmp_path / "bob.json").read_text())
    assert [m["text"] for m in bob["messages"]] == [SECRET_TEXTS[1], SECRET_TEXTS[3]]
    assert (tmp_path / "bob.json").stat().st_mode & 0o777 == 0o600
    room = streamzy(settings, tmp_path, "export", "--room", "general", "--output",
                    str(tmp_path / "general.json"))
    assert room.returncode == 0, room.stderr
    assert json.loads((tmp_path / "general.json").read_text())["count"] == 3
    _clean_failure(streamzy(settings, tmp_path, "export", "--room", "nowhere", "--output",
                            str(tmp_path / "x.json")), "no room named")
    assert not (tmp_path / "x.json").exists()
    services = build_services(settings, clock)
    try:
        rows = await audit_rows(services, "data_exported")
    finally:
        await services.close()
    details = [json.loads(r.detail) for r in rows]
    assert [(d["scope"], d["count"]) for d in details] == [("user", 2), ("room", 3)]
    assert all(r.client_ip == "local" for r in rows)

