"""The database engine and the unit of work (SQLite specifics live in storage/sqlite.py)."""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any, Protocol

from sqlalchemy import Connection, TextClause, event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

from streamzy.storage.errors import is_storage_full, is_unavailable
from streamzy.storage.sqlite import SqliteTx, is_sqlite, lock_file, sqlite_path, sqlite_pragmas

__all__ = ["Database", "Tx", "is_sqlite", "is_unavailable", "make_engine", "sqlite_pragmas"]

SOLE_SERVER_LOCK = 0x5752_5A59  # an arbitrary advisory-lock key: "STRZY"
# Advisory-lock keys of operator commands that must not run twice at once.
COMMAND_LOCKS = {"rotate-keys": 0x5752_5A5A, "search-index": 0x5352_4348}


class _WriteTrackingSession(Session):
    """Marks a session that flushed changes, so a clean commit proves storage is writable."""


@event.listens_for(_WriteTrackingSession, "after_flush")
def _flushed(session: Session, _context: Any) -> None:
    session.info["wrote"] = True


POOL_SIZE = 10
POOL_OVERFLOW = 20


def make_engine(url: str, timeout: float | None = None,
                synchronous: str = "FULL") -> AsyncEngine:
    """Create the engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout.

    ``timeout`` bounds every wait on a database server: connecting, each statement
    (asyncpg's command timeout, so a hung server answers TimeoutError instead of holding a
    request forever) and waiting for a pooled connection. Migrations pass None.
    """
    # A join storm can want more connections than the pool has: waiting for one is bounded
    # like any other wait (SQLAlchemy's default is 30 s, which held sockets unanswered).
    pool: dict[str, Any] = {"pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW}
    if timeout is not None:
        pool["pool_timeout"] = timeout
    if is_sqlite(url):
        engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True,
                                     **pool)
        event.listen(engine.sync_engine, "connect",
                     functools.partial(sqlite_pragmas, synchronous=synchronous))
        return engine
    bounded: dict[str, Any] = {}
    if timeout is not None:
        bounded = {"connect_args": {"timeout": timeout, "command_timeout": timeout}}
    return create_async_engine(url, pool_pre_ping=True, hide_parameters=True, **pool,
                               **bounded)


class Tx(Protocol):
    """A transaction for prepared text statements (``:name`` parameters)."""

    def rows(self, statement: TextClause, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        ...

    def many(self, statement: TextClause, params: Sequence[Mapping[str, Any]]) -> None:
        """Run a statement (an INSERT) once per parameter set, returning nothing."""
        ...


class _SqlAlchemyTx:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def rows(self, statement: TextClause, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        return self._conn.execute(statement, params).all()

    def many(self, statement: TextClause, params: Sequence[Mapping[str, Any]]) -> None:
        if params:
            self._conn.execute(statement, list(params))


class Database:
    """Owns the engine; hands out units of work."""

    def __init__(self, url: str, timeout: float | None = None,
                 synchronous: str = "FULL") -> None:
        self.url = url
        self.timeout = timeout
        self.synchronous = synchronous
        self.engine = make_engine(url, timeout, synchronous)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False,
                                           sync_session_class=_WriteTrackingSession)
        # Set when a write failed for lack of space; cleared by the next write that commits.
        self.storage_full = False
        # aiosqlite runs every call (execute, fetch, commit...) as its own thread round trip;
        # a hot transaction goes to one worker thread on a plain sqlite3 connection instead.
        self._raw: sqlite3.Connection | None = None
        self._raw_lock = threading.Lock()
        self._lock_file: IO[str] | None = None
        self._lock_conn: AsyncConnection | None = None
        self._command_locks: list[Any] = []  # lock files or advisory-lock connections
        # Hot reads (a join storm's membership checks and history) on SQLite: each read
        # thread keeps its own plain sqlite3 connection (WAL readers never wait for the
        # writer); through aiosqlite a one-statement read cost ~2 ms of CPU.
        self._readers = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_pool: ThreadPoolExecutor | None = None

    def pool_checked_out(self) -> int:
        """Pooled connections in use now (for the metrics, read at scrape time)."""
        return int(getattr(self.engine.pool, "checkedout", lambda: 0)())

    @staticmethod
    def pool_capacity() -> int:
        return POOL_SIZE + POOL_OVERFLOW

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[AsyncSession]:
        """A transaction: commits when the block ends cleanly, rolls back otherwise."""
        try:
            async with self.sessions() as session:
                async with session.begin():
                    yield session
                if session.info.get("wrote"):
                    self.storage_full = False
        except Exception as exc:
            self.storage_full = self.storage_full or is_storage_full(exc)
            raise

    def _raw_connection(self) -> sqlite3.Connection:
        if self._raw is None:
            conn = sqlite3.connect(sqlite_path(self.url), timeout=30, isolation_level=None,
                                   check_same_thread=False)
            sqlite_pragmas(conn, None, self.synchronous)
            self._raw = conn
        return self._raw

    async def run_transaction[T](self, work: Callable[..., T], *args: Any) -> T:
        """Run blocking ``work(tx, *args)`` in one transaction, committed on return: in one
        worker-thread hop on SQLite (write lock taken up front), through the async driver
        otherwise."""
        if is_sqlite(self.url):

            def run() -> T:
                with self._raw_lock:
                    conn = self._raw_connection()
                    try:
                        conn.execute("BEGIN IMMEDIATE")
                        result = work(SqliteTx(conn), *args)
                        conn.execute("COMMIT")
                    except sqlite3.Error as exc:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        raise DBAPIError.instance(None, None, exc, sqlite3.Error) from exc
                    except BaseException:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        raise
                    return result

            try:
                result = await asyncio.to_thread(run)
            except Exception as exc:
                self.storage_full = self.storage_full or is_storage_full(exc)
                raise
            self.storage_full = False
            return result
        try:
            async with self.engine.begin() as conn:
                result = await conn.run_sync(lambda sync: work(_SqlAlchemyTx(sync), *args))
        except Exception as exc:
            self.storage_full = self.storage_full or is_storage_full(exc)
            raise
        self.storage_full = False
        return result

    async def read[T](self, work: Callable[..., T], *args: Any) -> T:
        """Run blocking read-only ``work(tx, *args)`` in one snapshot, within the database
        timeout: on SQLite in one worker-thread hop on that thread's own read-only
        connection, through the engine otherwise."""
        async with asyncio.timeout(self.timeout):
            if is_sqlite(self.url) and sqlite_path(self.url) != ":memory:":
                if self._reader_pool is None:
                    self._reader_pool = ThreadPoolExecutor(4, thread_name_prefix="db-read")
                return await asyncio.get_running_loop().run_in_executor(
                    self._reader_pool, functools.partial(self._read_sqlite, work, *args))
            async with self.engine.connect() as conn:
                return await conn.run_sync(lambda sync: work(_SqlAlchemyTx(sync), *args))

    def _read_sqlite[T](self, work: Callable[..., T], *args: Any) -> T:
        conn: sqlite3.Connection | None = getattr(self._readers, "conn", None)
        try:
            if conn is None:
                conn = sqlite3.connect(sqlite_path(self.url), timeout=5, isolation_level=None,
                                       check_same_thread=False)
                sqlite_pragmas(conn, None, self.synchronous)
                conn.execute("PRAGMA query_only=ON")  # this connection can never write
                self._readers.conn = conn
                self._reader_conns.append(conn)
            conn.execute("BEGIN")  # one snapshot for every statement of ``work``
            try:
                return work(SqliteTx(conn), *args)
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise DBAPIError.instance(None, None, exc, sqlite3.Error) from exc

    async def ping(self, within: float = 0.8) -> bool:
        """Does the database answer within ``within`` seconds? (/readyz must answer in 1 s
        even when the server hangs.)"""
        try:
            async with asyncio.timeout(within), self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:  # any driver error or the timeout means "not ready"
            return False
        return True

    def write_problem(self) -> str | None:
        """Why this process could never write the embedded database, or None. (SQLite writes
        the database, its WAL and lock files in the database's directory.)"""
        if not is_sqlite(self.url) or sqlite_path(self.url) == ":memory:":
            return None
        path = Path(sqlite_path(self.url)).resolve()
        if not os.access(path.parent, os.W_OK):
            return f"the database directory {path.parent} is read-only"
        if path.exists() and not os.access(path, os.W_OK):
            return f"the database file {path} is read-only"
        return None

    async def claim_sole_server(self) -> bool:
        """Claim "the only server process on this database" until dispose(); False if taken.

        Without Redis, sockets, rate limits and revocations live in one process's memory, so
        a second process on the same database would silently split them. SQLite uses an OS
        file lock beside the database; PostgreSQL a session advisory lock.
        """
        if is_sqlite(self.url):
            path = sqlite_path(self.url)
            if path == ":memory:":
                return True
            self._lock_file = await asyncio.to_thread(lock_file, f"{path}.server-lock")
            return self._lock_file is not None
        self._lock_conn = await self._advisory_lock(SOLE_SERVER_LOCK)
        return self._lock_conn is not None

    async def claim_command(self, name: str) -> bool:
        """Claim "the only ``name`` command running on this database" until dispose();
        False if another process holds it. The operating system (a file lock) or
        PostgreSQL (a session advisory lock) releases it when the holder dies, even by
        kill -9, so a resumed run never waits for a stale claim to expire."""
        if is_sqlite(self.url):
            path = sqlite_path(self.url)
            if path == ":memory:":
                return True
            handle = await asyncio.to_thread(lock_file, f"{path}.{name}-lock")
            if handle is not None:
                self._command_locks.append(handle)
            return handle is not None
        conn = await self._advisory_lock(COMMAND_LOCKS[name])
        if conn is not None:
            self._command_locks.append(conn)
        return conn is not None

    async def _advisory_lock(self, key: int) -> AsyncConnection | None:
        conn = await self.engine.connect()
        try:
            got = (await conn.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                      {"key": key})).scalar()
        except BaseException:
            await conn.close()
            raise
        if not got:
            await conn.close()
            return None
        return conn

    async def dispose(self) -> None:
        if self._reader_pool is not None:
            pool, self._reader_pool = self._reader_pool, None
            try:  # a connection is closed only once no thread can be using it
                async with asyncio.timeout(5):
                    await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
            except TimeoutError:  # a read stuck on a hung disk: leave its connection be
                self._reader_conns.clear()
        for conn in self._reader_conns:
            conn.close()
        self._reader_conns.clear()
        if self._lock_conn is not None:
            await self._lock_conn.close()
            self._lock_conn = None
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
        for held in self._command_locks:
            if isinstance(held, AsyncConnection):
                await held.close()
            else:
                held.close()
        self._command_locks.clear()
        await self.engine.dispose()
        if self._raw is not None:
            # In a thread: the lock waits for a transaction still running there.
            await asyncio.to_thread(self._close_raw)

    def _close_raw(self) -> None:
        with self._raw_lock:
            if self._raw is not None:
                self._raw.close()
                self._raw = None
