"""``streamzy`` commands: purge, erase-user, delete-room: retention and shredding.

Each runs against the configured database with the same services as the server and is
audited as the system (no user, address ``local``). Refusals (no such user, the last
admin) print a clear message and exit non-zero (``cli.main`` maps ServiceError to 1).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable

from streamzy.guards.context import SYSTEM
from streamzy.services.erasure import POLICIES
from streamzy.wiring import Services

DEADLINE_SECONDS = 3600.0


def _run(args: argparse.Namespace, work: Callable[[Services], Awaitable[int]]) -> int:
    from streamzy.cli import _load, _prepare_sqlite_dir
    from streamzy.config import validate_for_start
    from streamzy.wiring import build_services

    settings = _load(args)
    validate_for_start(settings)
    _prepare_sqlite_dir(settings)

    async def main() -> int:
        services = build_services(settings)
        try:
            async with asyncio.timeout(DEADLINE_SECONDS):
                return await work(services)
        finally:
            await services.close()

    return asyncio.run(main())


def cmd_purge(args: argparse.Namespace) -> int:
    async def work(services: Services) -> int:
        report = await services.retention.purge(SYSTEM, dry_run=args.dry_run)
        verb = "would purge" if args.dry_run else "purged"
        for room_id, count in sorted(report.rooms.items()):
            print(f"room {report.names.get(room_id, '?')} (id {room_id}): {verb} {count}")
        print(f"total: {verb} {report.total} message(s)")
        return 0
    return _run(args, work)


def cmd_erase_user(args: argparse.Namespace) -> int:
    async def work(services: Services) -> int:
        user = await services.erasure.target(args.username)
        done = await services.erasure.erase(None, user.id, SYSTEM, messages=args.messages)
        print(f"erased account {user.id}: now {done.username}; messages "
              f"{'deleted: ' + str(done.messages) if args.messages == 'delete' else 'anonymised'}"
              f"; rooms left: {done.rooms_left}; bot tokens revoked: {done.tokens_revoked}; "
              f"sessions ended: {done.sessions_ended}")
        return 0
    return _run(args, work)


def cmd_delete_room(args: argparse.Namespace) -> int:
    async def work(services: Services) -> int:
        room = await services.rooms.resolve(args.name.strip().lower()[:64])
        if room.is_dm:
            print("streamzy: direct conversations are deleted by their members")
            return 1
        done = await services.shredder.delete_room(None, room.id, SYSTEM)
        print(f"deleted room {done.name} (id {done.room_id}): its key is destroyed, "
              f"{done.messages} message(s) are unrecoverable")
        return 0
    return _run(args, work)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add purge, erase-user and delete-room to the parser."""
    purge = sub.add_parser("purge", help="delete messages past their retention period")
    purge.add_argument("--dry-run", action="store_true", help="count per room, delete nothing")
    purge.set_defaults(func=cmd_purge)
    erase = sub.add_parser("erase-user", help="erase a person (GDPR), per SECURITY.md")
    erase.add_argument("username")
    erase.add_argument("--messages", choices=POLICIES, default="delete",
                       help="delete their messages' text (default) or keep it, anonymised")
    erase.set_defaults(func=cmd_erase_user)
    delete = sub.add_parser("delete-room", help="delete a room: its key is destroyed")
    delete.add_argument("name")
    delete.set_defaults(func=cmd_delete_room)


