"""Acknowledged means durable: SQLite commits with synchronous=FULL unless told otherwise,
and check-config warns about a PostgreSQL that acknowledges before it is durable."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from streamzy.storage.db import Database
from tests.conftest import ROOT, _pg_execute, _pg_url, need_service

FULL, NORMAL = 2, 1  # PRAGMA synchronous values


@pytest.mark.parametrize(("setting", "expected"), [("FULL", FULL), ("NORMAL", NORMAL)])
async def test_sqlite_connections_use_the_configured_synchronous(
        tmp_path: Path, template_db: Path, setting: str, expected: int) -> None:
    db_file = tmp_path / "s.db"
    db_file.write_bytes(template_db.read_bytes())
    db = Database(f"sqlite+aiosqlite:///{db_file}", synchronous=setting)
    try:
        async with db.engine.connect() as conn:  # the pooled connections
            assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == expected
        # the message writer's own connection
        assert await db.run_transaction(
            lambda tx: tx.rows(text("PRAGMA synchronous"), {})[0][0]) == expected
    finally:
        await db.dispose()


def test_sqlite_defaults_to_full() -> None:
    from streamzy.config import Settings

    assert Settings(_env_file=None).sqlite_synchronous == "FULL"  # type: ignore[call-arg]


async def test_check_config_warns_when_postgresql_acks_before_durable(tmp_path: Path) -> None:
    base = need_service("STREAMZY_TEST_DATABASE_URL", "PostgreSQL")
    name = f"streamzy_sync_{uuid.uuid4().hex[:10]}"
    await _pg_execute(base, f"CREATE DATABASE {name}",
                      f"ALTER DATABASE {name} SET synchronous_commit = off")
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMZY_")}
        env.update({"STREAMZY_DATABASE_URL": _pg_url(base, name), "PYTHONPATH": str(ROOT)})
        done = subprocess.run([sys.executable, "-m", "streamzy.cli", "check-config"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
                              check=False)
        assert "[WARN] PostgreSQL synchronous_commit=off" in done.stdout, done.stdout + done.stderr
    finally:
        await _pg_execute(base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
