"""SQLite specifics: connection pragmas (WAL, durability), the message writer's plain
sqlite3 transaction, and the file lock that marks the one server process of a database."""

from __future__ import annotations

import fcntl
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import IO, Any

from sqlalchemy import TextClause
from sqlalchemy.exc import DBAPIError


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_path(url: str) -> str:
    return url.split(":///", 1)[-1] or ":memory:"


def lock_file(path: str) -> IO[str] | None:
    handle = open(path, "a")  # held open for the process lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


# FULL: a commit is on disk (fsync of the WAL) before it returns, so an acknowledged message
# survives power loss and OS crashes, not only a killed process (NORMAL's promise). The group
# commit spreads each fsync over a whole batch. STREAMZY_SQLITE_SYNCHRONOUS=NORMAL trades that
# for speed where the disk or the platform already guarantees it.
SQLITE_SYNCHRONOUS = {"FULL", "NORMAL"}


def sqlite_pragmas(dbapi_connection: Any, _record: Any, synchronous: str = "FULL") -> None:
    if synchronous not in SQLITE_SYNCHRONOUS:
        raise ValueError(f"synchronous must be one of {sorted(SQLITE_SYNCHRONOUS)}")
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA synchronous={synchronous}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    # Deleted content is overwritten, not left in free pages: a shredded room's wrapped key
    # or a purged message must not survive in the file (or in a backup copied from it).
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def _sqlite_value(value: Any) -> Any:
    # SQLAlchemy's storage format for DateTime on SQLite, so ORM reads parse it back.
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def read_datetime(value: Any) -> datetime:
    """A timestamp column as read through either driver (SQLite hands back SQLAlchemy's
    text format), always timezone-aware UTC."""
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class SqliteTx:
    """The statements straight on sqlite3 (which takes ``:name`` parameters natively):
    SQLAlchemy's per-statement work cost ~3x SQLite's own in the message writer."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def rows(self, statement: TextClause, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        try:
            return self._conn.execute(
                statement.text, {k: _sqlite_value(v) for k, v in params.items()}).fetchall()
        except sqlite3.Error as exc:  # the same exception types as everywhere else
            raise DBAPIError.instance(statement.text, None, exc, sqlite3.Error) from exc

    def many(self, statement: TextClause, params: Sequence[Mapping[str, Any]]) -> None:
        """One statement for many parameter sets (sqlite3's executemany: one prepare)."""
        try:
            self._conn.executemany(statement.text, [
                {k: _sqlite_value(v) for k, v in one.items()} for one in params])
        except sqlite3.Error as exc:
            raise DBAPIError.instance(statement.text, None, exc, sqlite3.Error) from exc
