"""Backups and restores: one encrypted file holding the database, never the master keys.

``create`` takes a consistent copy while the server keeps writing (SQLite: the online
backup API into a private temporary file; PostgreSQL: ``pg_dump -Fc`` of an exported
snapshot, so the manifest's counts and the dump agree), and encrypts it with the backup key
(storage/backup_file.py) to ``FILE.partial``, renamed to FILE only once complete.

``restore`` decrypts into a scratch place (a temporary file beside the SQLite target, a
scratch PostgreSQL database), upgrades its schema if the backup is older, opens every sealed
row with the configured master keys (services/backup_verify.py) and only then puts it in
place. A restore that cannot read its messages changes nothing.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from streamzy.clock import Clock
from streamzy.services import backup_postgres as pg
from streamzy.services.backup_contents import (  # BackupError, Manifest: this module's API
    BackupError,
    Manifest,
    backup_key,
    master_keys,
    open_backup,
    payload,
    private_file,
    write_manifest,
)
from streamzy.services.backup_verify import Verified, verify_database
from streamzy.services.errors import Conflict, Invalid
from streamzy.storage import system_state
from streamzy.storage.backup_file import (
    BackupWriter,
    PlainReader,
    fsync_dir,
)
from streamzy.storage.db import SOLE_SERVER_LOCK, Database
from streamzy.storage.migrate import upgrade
from streamzy.storage.models import Message
from streamzy.storage.sqlite import is_sqlite, lock_file, sqlite_path

COUNTED = ("rooms", "messages", "room_keys")
PG_TIMEOUT = 6 * 3600.0


@dataclass(frozen=True)
class Outcome:
    """What a restore (or a verification) found."""

    manifest: Manifest
    verified: Verified
    target: str

    @property
    def ok(self) -> bool:
        return self.verified.ok


@dataclass
class Progress:
    """How a long run reports: ``total(n)`` once, then ``advance(k)`` (a progress bar)."""

    total: Callable[[int], None] | None = None
    advance: Callable[[int], None] | None = None


def _sqlite_counts(conn: sqlite3.Connection) -> dict[str, Any]:
    counts: dict[str, Any] = {
        name: int(conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0])  # noqa: S608 - fixed table names  # nosec B608
        for name in COUNTED}
    counts["revision"] = str(conn.execute("SELECT version_num FROM alembic_version")
                             .fetchone()[0])
    return counts


def _sqlite_snapshot(db_path: str, copy: Path) -> dict[str, Any]:
    """A consistent copy through the online backup API (one read snapshot: writers go on)."""
    if not Path(db_path).exists():
        raise BackupError("no_database", f"no database at {db_path}")
    source = sqlite3.connect(db_path, timeout=30)
    target = sqlite3.connect(copy)
    try:
        source.backup(target)
        target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        return _sqlite_counts(target)
    finally:
        target.close()
        source.close()


def _finish(partial: Path, out: Path) -> None:
    os.replace(partial, out)
    fsync_dir(str(out.parent))


def _encrypt_file(plain: Path, partial: Path, key: bytes, manifest: Manifest) -> None:
    with private_file(partial) as sink, open(plain, "rb") as source:
        writer = BackupWriter(sink, key)
        write_manifest(writer, manifest)
        while chunk := source.read(1024 * 1024):
            writer.write(chunk)
        writer.close()
        sink.flush()
        os.fsync(sink.fileno())


def _new_file(out: Path) -> Path:
    out = out.resolve()
    if out.exists():
        raise Conflict("backup_exists", f"{out} exists already: choose a new file name")
    if not out.parent.is_dir():
        raise Invalid("no_directory", f"the directory {out.parent} does not exist")
    return out


async def create(settings: Any, out: Path, clock: Clock) -> Manifest:
    """Write an encrypted backup of the configured database to ``out`` (never overwritten)."""
    key = backup_key(settings)
    out = await asyncio.to_thread(_new_file, out)
    partial = out.with_name(out.name + ".partial")
    url = settings.database_url
    created = clock.now().isoformat()
    try:
        if is_sqlite(url):
            scratch = Path(tempfile.mkdtemp(prefix=".streamzy-backup-", dir=out.parent))
            try:
                copy = scratch / "snapshot.db"
                counts = await asyncio.to_thread(_sqlite_snapshot, sqlite_path(url), copy)
                manifest = Manifest("sqlite", counts.pop("revision"), created, **counts)
                await asyncio.to_thread(_encrypt_file, copy, partial, key, manifest)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        else:
            manifest = await _pg_backup(pg.PgTarget.of(url), partial, key, created)
        await asyncio.to_thread(_finish, partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return manifest


async def _pg_backup(target: pg.PgTarget, partial: Path, key: bytes, created: str) -> Manifest:
    conn = await pg.connect(target)
    try:
        tx = conn.transaction(isolation="repeatable_read", readonly=True)
        await tx.start()
        snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
        counts = {name: int(await conn.fetchval(f"SELECT count(*) FROM {name}"))  # noqa: S608 - fixed table names  # nosec B608
                  for name in COUNTED}
        revision = str(await conn.fetchval("SELECT version_num FROM alembic_version"))
        manifest = Manifest("postgresql", revision, created, **counts)

        def run() -> None:
            with private_file(partial) as sink:
                writer = BackupWriter(sink, key)
                write_manifest(writer, manifest)
                pg.dump(target, snapshot, writer.write, PG_TIMEOUT)
                writer.close()
                sink.flush()
                os.fsync(sink.fileno())

        await asyncio.to_thread(run)  # the snapshot's transaction stays open meanwhile
        await tx.rollback()
        return manifest
    finally:
        await conn.close()


# -- restoring --

async def _check(url: str, manifest: Manifest, settings: Any, progress: Progress) -> Verified:
    verified = await verify_database(url, master_keys(settings), on_total=progress.total,
                                     progress=progress.advance)
    db = Database(url, timeout=60)
    try:
        async with db.unit() as session:
            messages = (await session.execute(select(func.count()).select_from(Message))
                        ).scalar_one()
    finally:
        await db.dispose()
    if messages != manifest.messages:
        raise BackupError("bad_backup", f"the restored database holds {messages} messages, "
                          f"its manifest says {manifest.messages}")
    return verified


def _refusal(verified: Verified) -> BackupError:
    return BackupError("not_verified", f"{verified.failed} of {verified.checked} sealed rows "
                       "did not decrypt with STREAMZY_MESSAGE_KEYS (a wrong or missing "
                       "master key?): nothing was restored")


def _decrypt_to(reader: PlainReader, path: Path) -> None:
    with private_file(path) as sink:
        for chunk in payload(reader):
            sink.write(chunk)
        sink.flush()
        os.fsync(sink.fileno())


def _sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def _settle(path: Path) -> None:
    """Fold any WAL into the file, so one file is all there is to move."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")
    finally:
        conn.close()


def _put_in_place(scratch: Path, target: Path, force: bool) -> None:
    """Move ``scratch`` to ``target`` while holding the server lock (no server runs)."""
    lock = lock_file(f"{target}.server-lock")
    if lock is None:
        raise Conflict("server_running", f"a Streamzy server is using {target}: stop it first")
    try:
        if target.exists() and not force:
            raise Conflict("target_exists", f"{target} exists: restore with --force to "
                           "replace it")
        for suffix in ("-wal", "-shm", "-journal"):  # the old file's, never to be replayed
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        os.replace(scratch, target)
        fsync_dir(str(target.parent))
    finally:
        lock.close()


async def _restore_sqlite(reader: PlainReader, manifest: Manifest, settings: Any,
                          target: Path, force: bool, progress: Progress,
                          keep: bool = True) -> Outcome:
    target, scratch = await asyncio.to_thread(_scratch_beside, target, force or not keep)
    try:
        await asyncio.to_thread(_decrypt_to, reader, scratch)
        await asyncio.to_thread(upgrade, _sqlite_url(scratch))
        verified = await _check(_sqlite_url(scratch), manifest, settings, progress)
        if not verified.ok:
            raise _refusal(verified)
        if keep:
            await asyncio.to_thread(_settle, scratch)
            await asyncio.to_thread(_put_in_place, scratch, target, force)
        return Outcome(manifest, verified, str(target))
    finally:
        await asyncio.to_thread(_remove, scratch)


def _scratch_beside(target: Path, replace: bool) -> tuple[Path, Path]:
    """The resolved target and a new private file beside it (same file system: the final
    move is an atomic rename)."""
    target = target.resolve()
    if target.exists() and not replace:
        raise Conflict("target_exists", f"{target} exists: restore with --force to replace it")
    if not target.parent.is_dir():
        raise Invalid("no_directory", f"the directory {target.parent} does not exist")
    fd, name = tempfile.mkstemp(prefix=".streamzy-restore-", suffix=".db", dir=target.parent)
    os.close(fd)
    return target, Path(name)


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def _restore_pg(source: Path, key: bytes, manifest: Manifest, settings: Any,
                      url: str, force: bool, progress: Progress, keep: bool = True) -> Outcome:
    target = pg.PgTarget.of(url)
    if keep and await pg.table_count(target) and not force:
        raise Conflict("target_exists", f"the database {target.database!r} is not empty: "
                       "restore with --force to replace its contents")
    scratch = f"streamzy_verify_{secrets.token_hex(6)}"
    await pg.create_database(target, scratch)
    try:
        await _pg_load(source, key, target, scratch, clean=False)
        await asyncio.to_thread(upgrade, target.url(scratch))
        verified = await _check(target.url(scratch), manifest, settings, progress)
    finally:
        await pg.drop_database(target, scratch)
    if not verified.ok:
        raise _refusal(verified)
    if keep:  # verified: now the target, in one transaction (all or nothing)
        if await pg.server_running(target, SOLE_SERVER_LOCK):
            raise Conflict("server_running", f"a Streamzy server is using the database "
                           f"{target.database!r}: stop it first")
        await _pg_load(source, key, target, target.database, clean=force)
        await asyncio.to_thread(upgrade, url)
    return Outcome(manifest, verified, target.database if keep else scratch)


async def _pg_load(source: Path, key: bytes, target: pg.PgTarget, database: str, *,
                   clean: bool) -> None:
    def run() -> None:
        handle, reader, _ = open_backup(source, key)
        with handle:
            pg.restore(target, database, payload(reader), PG_TIMEOUT, clean=clean)

    await asyncio.to_thread(run)


async def restore(settings: Any, source: Path, url: str, *, force: bool = False,
                  progress: Progress | None = None, keep: bool = True) -> Outcome:
    """Restore ``source`` into the database at ``url`` after verifying it (``keep=False``:
    only verify, in a scratch place that is removed afterwards)."""
    key = backup_key(settings)
    progress = progress or Progress()
    handle, reader, manifest = await asyncio.to_thread(open_backup, source, key)
    with handle:
        if manifest.backend == "sqlite" and is_sqlite(url):
            return await _restore_sqlite(reader, manifest, settings, Path(sqlite_path(url)),
                                         force, progress, keep)
    if manifest.backend == "postgresql" and not is_sqlite(url):
        return await _restore_pg(source, key, manifest, settings, url, force, progress, keep)
    raise BackupError("wrong_backend", f"this is a {manifest.backend} backup; it restores "
                      "into the same kind of database only")


async def verify_backup(settings: Any, source: Path, clock: Clock,
                        progress: Progress | None = None) -> Outcome:
    """Restore ``source`` into a scratch place, verify it, and record the outcome (name,
    time, messages, ok) as ``backup_verified`` in the live database."""
    url = settings.database_url
    scratch_url = url
    if is_sqlite(url):  # a scratch file beside the backup, removed afterwards
        scratch = f".streamzy-verify-{secrets.token_hex(6)}.db"
        scratch_url = _sqlite_url(await asyncio.to_thread(
            lambda: source.absolute().parent / scratch))
    ok, messages = False, 0
    try:
        outcome = await restore(settings, source, scratch_url, progress=progress, keep=False)
        ok, messages = outcome.ok, outcome.verified.messages
        return outcome
    finally:
        await record_verified(url, source.name, clock.now(), messages, ok)


async def record_verified(url: str, name: str, at: datetime, messages: int, ok: bool) -> None:
    db = Database(url, timeout=10)
    try:
        await system_state.write_json(db, system_state.BACKUP_VERIFIED,
                                      {"file": name, "at": at.isoformat(),
                                       "messages": messages, "ok": ok}, at)
    finally:
        await db.dispose()
