"""``streamzy audit verify`` and ``streamzy audit purge``: the tamper-evident audit chain.

``verify`` exits 0 when the chain holds and 1 naming the first bad row and the kind of
break (2: it could not be checked at all); the result is kept for the admin console, and a
break is audited. ``purge`` deletes rows older than STREAMZY_AUDIT_RETENTION_DAYS without
breaking the chain (``--dry-run`` only counts them).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from streamzy.guards.context import SYSTEM

if TYPE_CHECKING:
    from streamzy.wiring import Services

UNAVAILABLE = 2


def _run(args: argparse.Namespace, work: Callable[[Services], Awaitable[int]]) -> int:
    from streamzy.cli import _load
    from streamzy.config import validate_for_start
    from streamzy.wiring import build_services

    settings = _load(args)
    validate_for_start(settings)

    async def main() -> int:
        services = build_services(settings)
        try:
            return await work(services)
        finally:
            await services.close()

    try:
        return asyncio.run(main())
    except (OSError, TimeoutError) as exc:
        print(f"streamzy: the database cannot be reached ({type(exc).__name__})",
              file=sys.stderr)
    except Exception as exc:  # a missing table, a refused login: say so, no traceback
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        print(f"streamzy: the audit trail cannot be read ({type(exc).__name__}: {first})",
              file=sys.stderr)
    return UNAVAILABLE


def cmd_verify(args: argparse.Namespace) -> int:
    async def work(services: Services) -> int:
        report = await services.audit_log.verify_chain(SYSTEM, requested=True)
        print(report.summary())
        return 0 if report.ok else 1

    return _run(args, work)


def cmd_purge(args: argparse.Namespace) -> int:
    async def work(services: Services) -> int:
        report = await services.audit_log.purge(dry_run=args.dry_run, info=SYSTEM)
        if report is None:
            print("audit retention is off (STREAMZY_AUDIT_RETENTION_DAYS=0): nothing purged")
            return 0
        verb = "would purge" if args.dry_run else "purged"
        print(f"{verb} {report.rows} audit rows older than {report.cutoff.isoformat()}; "
              f"the chain now starts after id {report.anchor_id}")
        if report.broken_at is not None:
            print(f"stopped: the chain does not verify at row {report.broken_at} "
                  "(run `streamzy audit verify`); rows from there on were kept",
                  file=sys.stderr)
            return 1
        return 0

    return _run(args, work)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``audit verify`` and ``audit purge``."""
    audit = sub.add_parser("audit", help="verify or purge the tamper-evident audit trail")
    actions = audit.add_subparsers(dest="audit_command", required=True)
    verify = actions.add_parser("verify", help="check the audit chain; exit 1 on a break")
    verify.set_defaults(func=cmd_verify)
    purge = actions.add_parser("purge", help="delete audit rows past the audit retention")
    purge.add_argument("--dry-run", action="store_true", help="only count what would go")
    purge.set_defaults(func=cmd_purge)
