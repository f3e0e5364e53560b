"""PostgreSQL for backups: pg_dump / pg_restore as subprocesses, and scratch databases.

The password (if the URL has one) reaches the tools through ``PGPASSWORD`` in their
environment, never on the command line (where ``ps`` shows it to every local user). Every
run has a deadline: a hung server ends in a clear error, not a backup job that never ends.
"""

from __future__ import annotations

import os
import shutil
import subprocess  # nosec B404 - pg_dump and pg_restore, by absolute path, no shell
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlalchemy.engine import make_url

from streamzy.services.errors import Invalid, Unavailable

PIPE_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class PgTarget:
    """Where a PostgreSQL database is, as the command-line tools take it."""

    host: str
    port: int
    user: str
    password: str
    database: str

    @classmethod
    def of(cls, url: str) -> PgTarget:
        parsed = make_url(url)
        name = parsed.database or ""
        # A "database name" holding = or a scheme would be read as a connection string.
        if not name or "=" in name or "://" in name:
            raise Invalid("bad_database_url", "the PostgreSQL URL must name a database")
        return cls(parsed.host or "127.0.0.1", int(parsed.port or 5432),
                   parsed.username or "postgres", parsed.password or "", name)

    def dsn(self, database: str | None = None) -> str:
        """An asyncpg DSN (in this process only, never on a command line)."""
        auth = quote(self.user, safe="") + (f":{quote(self.password, safe='')}"
                                            if self.password else "")
        return f"postgresql://{auth}@{self.host}:{self.port}/{database or self.database}"

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of another database on the same server."""
        return make_url(f"postgresql+asyncpg://{self.host}/").set(
            host=self.host, port=self.port, username=self.user,
            password=self.password or None, database=database).render_as_string(
                hide_password=False)

    def args(self, database: str | None = None) -> list[str]:
        return ["--no-password", "-h", self.host, "-p", str(self.port), "-U", self.user,
                "-d", database or self.database]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        if self.password:
            env["PGPASSWORD"] = self.password
        return env


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise Unavailable("no_pg_tools", f"{name} is not installed (PostgreSQL client "
                          "tools, the same major version as the server)")
    return found


def _run(command: list[str], env: dict[str, str], timeout: float, *,
         read: Callable[[bytes], None] | None = None,
         feed: Iterable[bytes] | None = None) -> None:
    """Run ``command``; its stdout goes to ``read`` or ``feed`` goes to its stdin.
    Raises Unavailable with the tool's own message when it fails or overruns."""
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(  # noqa: S603 - fixed tool paths, argument list  # nosec B603
            command, env=env, stderr=errors,
            stdout=subprocess.PIPE if read else subprocess.DEVNULL,
            stdin=subprocess.PIPE if feed is not None else subprocess.DEVNULL)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        broken = False
        try:
            if read is not None and proc.stdout is not None:
                while chunk := proc.stdout.read(PIPE_CHUNK):
                    read(chunk)
            if feed is not None and proc.stdin is not None:
                try:
                    for chunk in feed:
                        proc.stdin.write(chunk)
                    proc.stdin.close()
                except BrokenPipeError:
                    broken = True
            code = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            timer.cancel()
        errors.seek(0)
        detail = errors.read(2000).decode("utf-8", "replace").strip()
    name = os.path.basename(command[0])
    if code < 0 or (code != 0 and not detail):
        raise Unavailable("pg_tool_failed", f"{name} was stopped (exit {code}; over "
                          f"{timeout:.0f} s or killed)")
    if code != 0 or broken:
        raise Unavailable("pg_tool_failed", f"{name} failed: {detail.splitlines()[-1] if detail else code}")


def dump(target: PgTarget, snapshot: str, sink: Callable[[bytes], None], timeout: float) -> None:
    """pg_dump -Fc of ``target`` as of ``snapshot`` (an exported snapshot), into ``sink``."""
    _run([tool("pg_dump"), "-Fc", "--no-owner", "--no-privileges", f"--snapshot={snapshot}",
          *target.args()], target.env(), timeout, read=sink)


def restore(target: PgTarget, database: str, chunks: Iterable[bytes], timeout: float, *,
            clean: bool) -> None:
    """pg_restore a custom-format dump from ``chunks`` into ``database``, all or nothing."""
    options = ["--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction"]
    if clean:
        options += ["--clean", "--if-exists"]
    _run([tool("pg_restore"), *options, *target.args(database)], target.env(), timeout,
         feed=chunks)


async def connect(target: PgTarget, database: str | None = None, within: float = 10) -> Any:
    import asyncpg

    try:
        return await asyncpg.connect(target.dsn(database), timeout=within)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise Unavailable("unavailable", f"cannot connect to PostgreSQL database "
                          f"{database or target.database!r} ({type(exc).__name__})") from None


async def table_count(target: PgTarget, database: str | None = None) -> int:
    """How many tables the public schema of ``database`` holds (0: empty)."""
    conn = await connect(target, database)
    try:
        return int(await conn.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", timeout=10))
    finally:
        await conn.close()


async def server_running(target: PgTarget, lock_key: int) -> bool:
    """Does a Streamzy server hold its sole-server lock on this database (no Redis)?"""
    conn = await connect(target)
    try:
        got = await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_key, timeout=10)
        if got:
            await conn.fetchval("SELECT pg_advisory_unlock($1)", lock_key, timeout=10)
        return not got
    finally:
        await conn.close()


async def create_database(target: PgTarget, name: str) -> None:
    conn = await connect(target)
    try:
        # Names are generated here (a fixed prefix and hex), never user input.
        await conn.execute(f'CREATE DATABASE "{name}"', timeout=60)
    finally:
        await conn.close()


async def drop_database(target: PgTarget, name: str) -> None:
    conn = await connect(target)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', timeout=60)
    finally:
        await conn.close()
