"""``streamzy search-index rebuild``: blind-index the messages stored before search existed
(or re-index one room), in batches, resumably, while the server runs."""

from __future__ import annotations

import argparse
import asyncio
import sys

from streamzy.commands.keys import _services


async def _rebuild(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from streamzy.services.search_rebuild import SearchRebuild

    services = _services(args)
    try:
        if not await services.db.claim_command("search-index"):
            print("streamzy: another search-index rebuild is already running on this "
                  "database; wait for it", file=sys.stderr)
            return 1
        rebuild = SearchRebuild(services.db, services.keyring, services.clock)
        with tqdm(desc="index messages", unit="msg", disable=args.no_progress,
                  file=sys.stderr, mininterval=0.5) as bar:

            def total(n: int) -> None:
                bar.total = n
                bar.refresh()

            outcome = await rebuild.run(args.room or None, args.batch_size, bar.update, total)
        print(f"search index: {outcome.messages} message(s) in {outcome.rooms} room(s) "
              f"indexed ({outcome.terms} terms)", flush=True)
        if outcome.unreadable:
            print(f"streamzy: {outcome.unreadable} message(s) could not be opened and were "
                  "left out", file=sys.stderr)
            return 1
        return 0
    finally:
        await services.close()


def cmd_search_index(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        print("streamzy: --batch-size must be >= 1", file=sys.stderr)
        return 2
    return asyncio.run(_rebuild(args))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's commands to the parser."""
    index = sub.add_parser("search-index", help="maintain the blind search index")
    actions = index.add_subparsers(dest="action", required=True)
    rebuild = actions.add_parser("rebuild", help="index stored messages (resumable; safe "
                                                 "while the server runs)")
    rebuild.add_argument("--room", default="", help="only this room (by name)")
    rebuild.add_argument("--batch-size", type=int, default=500,
                         help="messages per transaction (default 500)")
    rebuild.add_argument("--no-progress", action="store_true", help="no progress bar")
    rebuild.set_defaults(func=cmd_search_index)
