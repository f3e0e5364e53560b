"""A copy of the database as an attacker with a later backup would have it: the SQLite
file (and its WAL) as bytes, a copy made with the sqlite3 backup API, or ``pg_dump``."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from streamzy.storage.sqlite import sqlite_path


def sqlite_files(url: str) -> bytes:
    """The database file and its WAL, as they are on disk now."""
    path = Path(sqlite_path(url))
    data = path.read_bytes()
    wal = Path(f"{path}-wal")
    if wal.exists():
        data += wal.read_bytes()
    return data


def sqlite_backup(url: str, target: Path) -> bytes:
    """A copy made through the sqlite3 backup API (what a careful backup does)."""
    source = sqlite3.connect(sqlite_path(url))
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()
    return target.read_bytes()


async def pg_dump(url: str) -> bytes:
    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    process = await asyncio.create_subprocess_exec(
        "pg_dump", "--data-only", dsn, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    return out


async def database_copy(url: str, tmp: Path) -> bytes:
    """Every byte a copy of the database taken now holds (both backends)."""
    if url.startswith("sqlite"):
        return sqlite_files(url) + sqlite_backup(url, tmp / "backup-copy.db")
    return await pg_dump(url)


def holds(copy: bytes, secret: bytes) -> bool:
    """Is ``secret`` in the copy, raw or as pg_dump's bytea hex?"""
    return secret in copy or secret.hex().encode() in copy
