"""``streamzy`` commands for the master and room key lifecycle: ``keys`` (what is configured
and in use), ``rotate-keys`` (re-wrap under the newest master key; ``--data-keys`` also
rotates every room's data key and re-encrypts its content, throttled, resumable),
``retire-key`` (refused while any room key needs it) and ``check-keys``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from streamzy.guards.context import SYSTEM


def _services(args: argparse.Namespace) -> Any:
    from streamzy.cli import _load
    from streamzy.config import validate_for_start
    from streamzy.wiring import build_services

    settings = _load(args)
    validate_for_start(settings)
    return build_services(settings)


def grace_seconds(keyring_check_seconds: float) -> float:
    """How long an old room key version outlives the last row moved off it: longer than
    any process takes to notice the change, with room for a read in flight."""
    return 2 * keyring_check_seconds + 1.0


async def _status(args: argparse.Namespace) -> int:
    from streamzy.services.key_inventory import KeyInventory

    services = _services(args)
    try:
        status = await KeyInventory(services.db, services.clock, services.keyring,
                                    services.audit).status()
    finally:
        await services.close()
    print("master keys (newest first):")
    for use in status.masters:
        where = "" if use.configured else "   NOT CONFIGURED"
        newest = "  (newest)" if use.key_id == status.newest else ""
        print(f"  {use.key_id}  wraps {use.room_keys} room key(s){newest}{where}")
    if status.unwrappable:
        print(f"  (unknown)         wraps {status.unwrappable} room key(s): "
              "no configured key opens them")
    print("TOTP secrets sealed by each master key:")
    for use in status.masters:
        print(f"  {use.key_id}  seals {use.totp_secrets} TOTP secret(s)")
    if status.unopenable_secrets:
        print(f"  (unknown)         seals {status.unopenable_secrets} TOTP secret(s): "
              "no configured key opens them")
    stale = status.stale_rows
    print(f"rows on an older room key version: messages {stale.get('messages', 0)}, "
          f"reactions {stale.get('reactions', 0)}, reports {stale.get('reports', 0)}")
    if status.rotation is not None:
        rotation = status.rotation
        print(f"last data-key rotation: {rotation.get('phase')} (started "
              f"{rotation.get('started_at')}, moved {rotation.get('moved', 0)} rows)")
    return 1 if status.unwrappable or status.unopenable_secrets else 0


def cmd_keys(args: argparse.Namespace) -> int:
    return asyncio.run(_status(args))


async def _rotate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from streamzy.services.key_inventory import KeyInventory
    from streamzy.services.key_rotation import KeyRotation, Throttle

    services = _services(args)
    quiet = args.no_progress
    try:
        inventory = KeyInventory(services.db, services.clock, services.keyring,
                                 services.audit)
        with tqdm(desc="re-wrap room keys", unit="key", disable=quiet, file=sys.stderr) as bar:
            rewrapped = await inventory.rewrap(bar.update)
        print(f"room keys re-wrapped under {services.keyring.master.newest_id}: "
              f"{rewrapped.rewrapped}", flush=True)
        # TOTP secrets are sealed by the master keys themselves: they move in the same pass.
        resealed = await inventory.reseal_secrets()
        print(f"TOTP secrets re-sealed under {services.keyring.master.newest_id}: "
              f"{resealed.rewrapped}", flush=True)
        await services.audit("keys_rotated", SYSTEM, None, kind="master",
                             rewrapped=rewrapped.rewrapped, unusable=rewrapped.unwrappable,
                             totp_resealed=resealed.rewrapped,
                             totp_unusable=resealed.unwrappable,
                             master_key_id=services.keyring.master.newest_id)
        if rewrapped.unwrappable or resealed.unwrappable:
            print(f"streamzy: {rewrapped.unwrappable} room key(s) and {resealed.unwrappable} "
                  "TOTP secret(s) cannot be unwrapped with STREAMZY_MESSAGE_KEYS: configure "
                  "the key that wraps them", file=sys.stderr)
            return 1
        if not args.data_keys:
            return 0
        if not await services.db.claim_command("rotate-keys"):
            print("streamzy: another rotate-keys is already running on this database; "
                  "wait for it (a run that was killed releases its claim at once)",
                  file=sys.stderr)
            return 1
        rotation = KeyRotation(services.db, services.clock, services.keyring, services.audit,
                               grace_seconds=grace_seconds(
                                   services.settings.keyring_check_seconds))
        throttle = Throttle(args.batch_size, args.duty, args.max_rate)
        with tqdm(desc="re-encrypt", unit="row", disable=quiet, file=sys.stderr,
                  mininterval=0.5) as bar:

            def total(n: int) -> None:
                bar.total = n
                bar.refresh()

            outcome = await rotation.run(throttle, bar.update, total)
        print(f"data keys: {outcome.switched} room(s) on a new key version, {outcome.moved} "
              f"row(s) re-encrypted, {outcome.destroyed} old version(s) destroyed", flush=True)
        await services.audit("keys_rotated", SYSTEM, None, kind="data",
                             switched=outcome.switched, moved=outcome.moved,
                             destroyed=outcome.destroyed, kept=outcome.kept,
                             unreadable=outcome.unreadable)
        if outcome.kept or outcome.unreadable:
            print(f"streamzy: {outcome.kept} old version(s) kept: {outcome.unreadable} row(s) "
                  "could not be opened; run again after checking them", file=sys.stderr)
            return 1
        return 0
    finally:
        await services.close()


def cmd_rotate_keys(args: argparse.Namespace) -> int:
    if args.status:
        return cmd_keys(args)
    if args.retire:
        args.key_id = args.retire
        return cmd_retire_key(args)
    if args.batch_size < 1 or not 0 < args.duty <= 1 or args.max_rate < 0:
        print("streamzy: --batch-size must be >= 1, --duty in (0, 1], --max-rate >= 0",
              file=sys.stderr)
        return 2
    return asyncio.run(_rotate(args))


async def _retire(args: argparse.Namespace) -> int:
    from streamzy.services.errors import ServiceError
    from streamzy.services.key_inventory import KeyInventory

    services = _services(args)
    try:
        inventory = KeyInventory(services.db, services.clock, services.keyring,
                                 services.audit)
        try:
            await inventory.retire(args.key_id)
        except ServiceError as exc:
            await services.audit("master_key_retire", SYSTEM, None, key_id=args.key_id,
                                 allowed=False, reason=exc.code)
            print(f"streamzy: {exc.message}", file=sys.stderr)
            return 1
        await services.audit("master_key_retire", SYSTEM, None, key_id=args.key_id,
                             allowed=True)
    finally:
        await services.close()
    print(f"master key {args.key_id} wraps no room key and seals no TOTP secret: it is "
          "safe to remove it from "
          "STREAMZY_MESSAGE_KEYS (restart every server process afterwards)")
    return 0


def cmd_retire_key(args: argparse.Namespace) -> int:
    return asyncio.run(_retire(args))


async def _check(args: argparse.Namespace) -> int:
    from streamzy.storage.crypto import unusable_message

    services = _services(args)
    try:
        bad = await services.keyring.unusable_rooms()
        secrets = await services.keyring.unusable_secrets()
    finally:
        await services.close()
    if bad or secrets:
        print(f"streamzy: {unusable_message(bad, secrets)}", file=sys.stderr)
        return 1
    print("keys: every live room key and TOTP secret unwraps")
    return 0


def cmd_check_keys(args: argparse.Namespace) -> int:
    return asyncio.run(_check(args))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's commands to the parser."""
    keys = sub.add_parser("keys", help="list master keys and what they wrap")
    keys.set_defaults(func=cmd_keys)
    rotate = sub.add_parser("rotate-keys", help="re-wrap room keys under the newest master "
                                                "key; --data-keys also re-encrypts content")
    rotate.add_argument("--data-keys", action="store_true",
                        help="give every room a new data key and re-encrypt its content")
    rotate.add_argument("--batch-size", type=int, default=200,
                        help="rows per transaction (default 200)")
    rotate.add_argument("--duty", type=float, default=0.25,
                        help="share of time spent working, pausing in between (default 0.25)")
    rotate.add_argument("--max-rate", type=float, default=0.0,
                        help="at most this many rows per second (default: no ceiling)")
    rotate.add_argument("--no-progress", action="store_true", help="no progress bar")
    rotate.add_argument("--status", action="store_true", help="show the key status only")
    rotate.add_argument("--retire", metavar="KEY_ID", default="",
                        help="same as `streamzy retire-key KEY_ID`")
    rotate.set_defaults(func=cmd_rotate_keys)
    retire = sub.add_parser("retire-key", help="check that an old master key wraps nothing")
    retire.add_argument("key_id")
    retire.set_defaults(func=cmd_retire_key)
    check = sub.add_parser("check-keys", help="fail when any room key cannot be unwrapped")
    check.set_defaults(func=cmd_check_keys)
