"""The ``streamzy`` command: first-run setup and admin creation, run as a real process."""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
SECRETS = ("STREAMZY_SECRET_KEY", "STREAMZY_PASSWORD_PEPPER", "STREAMZY_MESSAGE_KEYS")
ONE_TIME = re.compile(r"One-time password \(shown once[^)]*\): (\S+)")


def streamzy(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMZY_")}
    env.update(PYTHONPATH=str(ROOT), STREAMZY_BCRYPT_ROUNDS="4",
               STREAMZY_DATABASE_URL=f"sqlite+aiosqlite:///{cwd / 'data' / 'chat.db'}")
    result = subprocess.run([sys.executable, "-m", "streamzy.cli", *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def env_file(cwd: Path) -> dict[str, str]:
    lines = (cwd / ".env").read_text("utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def users(cwd: Path) -> list[tuple[str, int, int]]:
    with sqlite3.connect(cwd / "data" / "chat.db") as db:
        return list(db.execute("SELECT username, is_admin, must_change_password FROM users "
                               "ORDER BY id"))


@pytest.fixture
def initialised(tmp_path: Path) -> tuple[Path, str]:
    result = streamzy(tmp_path, "init")
    return tmp_path, result.stdout


def test_init_writes_private_secrets_migrates_and_shows_the_password_once(
        initialised: tuple[Path, str]) -> None:
    cwd, output = initialised
    mode = stat.S_IMODE((cwd / ".env").stat().st_mode)
    assert mode == 0o600
    values = env_file(cwd)
    assert set(SECRETS) <= set(values)
    assert len(values["STREAMZY_SECRET_KEY"]) >= 32
    assert len(values["STREAMZY_PASSWORD_PEPPER"]) >= 32
    assert values["STREAMZY_SECRET_KEY"] != values["STREAMZY_PASSWORD_PEPPER"]
    Fernet(values["STREAMZY_MESSAGE_KEYS"].encode())
    for value in values.values():
        assert value not in output  # the secrets go to the file, not the terminal
    assert "database: migrations applied" in output
    passwords = ONE_TIME.findall(output)
    assert len(passwords) == 1 and len(passwords[0]) == 16
    assert output.count(passwords[0]) == 1
    assert users(cwd) == [("admin", 1, 1)]
    with sqlite3.connect(cwd / "data" / "chat.db") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        stored = b"".join(str(row).encode() for row in db.execute("SELECT * FROM users"))
    assert {"users", "applications", "sessions", "audit_events", "alembic_version"} <= tables
    assert passwords[0].encode() not in stored


def test_init_again_changes_nothing(initialised: tuple[Path, str]) -> None:
    cwd, _ = initialised
    before = (cwd / ".env").read_text("utf-8")
    again = streamzy(cwd, "init")
    assert "One-time password" not in again.stdout and "generated" not in again.stdout
    assert (cwd / ".env").read_text("utf-8") == before
    assert users(cwd) == [("admin", 1, 1)]


def test_init_fills_in_only_missing_secrets(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("# mine\nSTREAMZY_SECRET_KEY=kept-" + "k" * 40 + "\n"
                                   "STREAMZY_MESSAGE_KEYS=\n", "utf-8")
    (tmp_path / ".env").chmod(0o644)
    output = streamzy(tmp_path, "init").stdout
    assert "STREAMZY_MESSAGE_KEYS" in output and "STREAMZY_PASSWORD_PEPPER" in output
    values = env_file(tmp_path)
    assert values["STREAMZY_SECRET_KEY"] == "kept-" + "k" * 40
    assert values["STREAMZY_MESSAGE_KEYS"] and values["STREAMZY_PASSWORD_PEPPER"]
    assert (tmp_path / ".env").read_text("utf-8").startswith("# mine\n")
    assert stat.S_IMODE((tmp_path / ".env").stat().st_mode) == 0o600


def test_create_admin_prints_a_new_password(initialised: tuple[Path, str]) -> None:
    cwd, first = initialised
    result = streamzy(cwd, "create-admin", "second")
    passwords = ONE_TIME.findall(result.stdout)
    assert len(passwords) == 1 and passwords != ONE_TIME.findall(first)
    assert "'second'" in result.stdout
    assert users(cwd) == [("admin", 1, 1), ("second", 1, 1)]
    with sqlite3.connect(cwd / "data" / "chat.db") as db:
        events = [row[0] for row in db.execute(
            "SELECT detail FROM audit_events WHERE event = 'account_changed'")]
    assert len(events) == 2 and all("create_admin" in e for e in events)


def test_create_admin_with_a_taken_name_is_a_clear_error(initialised: tuple[Path, str]) -> None:
    cwd, _ = initialised
    result = streamzy(cwd, "create-admin", "ADMIN", check=False)
    assert result.returncode == 1
    assert "already taken" in result.stderr and "Traceback" not in result.stderr


def test_serve_runs_on_the_event_loop_hypercorn_toml_names() -> None:
    import uvloop
    from hypercorn.config import Config

    from streamzy.serving import loop_factory as _loop_factory

    shipped = Config.from_toml(Path(__file__).resolve().parent.parent / "hypercorn.toml")
    assert shipped.worker_class == "uvloop"
    factory = _loop_factory(shipped.worker_class)
    assert factory is uvloop.new_event_loop
    loop = factory()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
    assert _loop_factory("asyncio") is None  # asyncio.run's own loop
