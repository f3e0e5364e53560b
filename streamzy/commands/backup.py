"""``streamzy`` commands: backup and restore, export.

``backup FILE [--verify]``: an encrypted backup (services/backups.py); with --verify it is
restored into a scratch place and every message opened, and the outcome is recorded in the
live database. ``restore FILE``: verified before anything is replaced. ``export``: one
person's or one room's messages as JSON, with a progress bar. Every failure exits non-zero
with one clear line; nothing is reported done that was not.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from tqdm import tqdm

from streamzy.clock import SystemClock
from streamzy.config import ConfigError
from streamzy.guards.context import SYSTEM
from streamzy.services import backups
from streamzy.services.errors import NotFound


def _settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from streamzy.cli import _load

    settings = _load(args)
    if not settings.message_keys:
        raise ConfigError("STREAMZY_MESSAGE_KEYS is empty: a backup could not be verified")
    return settings


def _bar(description: str) -> tuple[tqdm, backups.Progress]:
    bar = tqdm(desc=description, unit="rows", file=sys.stderr, disable=None)

    def total(n: int) -> None:
        bar.reset(total=n)

    return bar, backups.Progress(total=total, advance=bar.update)


def cmd_backup(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if not settings.backup_key.get_secret_value():
        raise ConfigError("STREAMZY_BACKUP_KEY is not set: `streamzy gen-key --backup`, keep "
                          "it apart from the message keys")
    clock = SystemClock()
    out = Path(args.file)
    manifest = asyncio.run(backups.create(settings, out, clock))
    print(f"backup: {out} ({manifest.backend}, schema {manifest.revision}, "
          f"{manifest.rooms} rooms, {manifest.messages} messages, "
          f"{manifest.room_keys} room keys)")
    if args.verify:
        bar, progress = _bar("verifying")
        with bar:
            outcome = asyncio.run(backups.verify_backup(settings, out, clock, progress))
        print(f"verified: {outcome.verified.checked} sealed rows open with the configured "
              f"master keys ({outcome.verified.shredded} in shredded rooms)")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    settings = _settings(args)
    url = args.database_url or settings.database_url
    bar, progress = _bar("verifying")
    with bar:
        outcome = asyncio.run(backups.restore(settings, Path(args.file), url,
                                              force=args.force, progress=progress))
    manifest = outcome.manifest
    print(f"restored: {outcome.target} from a backup of {manifest.created_at} "
          f"({manifest.messages} messages); every sealed row "
          f"({outcome.verified.checked}) opened with the configured master keys")
    return 0


async def _export(args: argparse.Namespace, settings, out: Path) -> int:  # type: ignore[no-untyped-def]
    from streamzy.wiring import build_services

    services = build_services(settings)
    partial = out.with_name(out.name + ".partial")
    try:
        bar = tqdm(desc="exporting", unit="msgs", file=sys.stderr, disable=None)
        with bar:
            if args.user:
                user = await services.accounts.by_username(args.user)
                if user is None:
                    raise NotFound("no_user", f"no user named {args.user!r}")
                export = await services.exports.for_user(user.id, SYSTEM, actor_id=None,
                                                         on_rows=bar.update)
            else:
                room = await services.rooms.by_name(args.room)
                if room is None:
                    raise NotFound("unknown_room", f"no room named {args.room!r}")
                export = await services.exports.for_room(room.id, SYSTEM, actor_id=None,
                                                         on_rows=bar.update)
            bar.reset(total=export.count)
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as sink:
                async for chunk in export.chunks:
                    sink.write(chunk)
            os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        await services.close()
    print(f"exported: {export.count} messages to {out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    settings = _settings(args)
    out = Path(args.output)
    if out.exists():
        raise ConfigError(f"{out} exists already: choose a new file name")
    return asyncio.run(_export(args, settings, out))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``backup``, ``restore`` and ``export``."""
    backup = sub.add_parser("backup", help="write an encrypted backup of the database")
    backup.add_argument("file", help="the backup file to create (never overwritten)")
    backup.add_argument("--verify", action="store_true",
                        help="restore it into a scratch place, open every message, record it")
    backup.set_defaults(func=cmd_backup)
    restore = sub.add_parser("restore", help="restore a backup after verifying it")
    restore.add_argument("file")
    restore.add_argument("--database-url", default="",
                         help="restore into this database (default: STREAMZY_DATABASE_URL)")
    restore.add_argument("--force", action="store_true",
                         help="replace an existing database (stop the server first)")
    restore.set_defaults(func=cmd_restore)
    export = sub.add_parser("export", help="export messages as JSON (audited)")
    which = export.add_mutually_exclusive_group(required=True)
    which.add_argument("--user", help="every message this person wrote")
    which.add_argument("--room", help="every message of this room")
    export.add_argument("--output", required=True, help="the JSON file to create")
    export.set_defaults(func=cmd_export)
