"""The ``streamzy`` command: serve, init, create-admin, gen-key, check-config, migrate, and
the key, backup, audit and data-lifecycle commands registered from ``streamzy/commands/``."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import func, select

from streamzy import __version__
from streamzy.assets import asset_path
from streamzy.clock import SystemClock
from streamzy.commands import register_all
from streamzy.config import (
    Check,
    ConfigError,
    Settings,
    production_checks,
    validate_for_start,
)
from streamzy.guards.context import SYSTEM
from streamzy.services.errors import ServiceError
from streamzy.storage.backup_file import new_backup_key
from streamzy.storage.migrate import upgrade
from streamzy.storage.models import User

GENERATED = {
    "STREAMZY_SECRET_KEY": lambda: secrets.token_urlsafe(48),
    "STREAMZY_PASSWORD_PEPPER": lambda: secrets.token_urlsafe(48),
    "STREAMZY_MESSAGE_KEYS": lambda: Fernet.generate_key().decode(),
    "STREAMZY_BACKUP_KEY": new_backup_key,
}


def ensure_dev_keys(env_file: Path) -> list[str]:
    """Development only: write any missing secret into ``.env`` (mode 0600)."""
    lines = env_file.read_text("utf-8").splitlines() if env_file.exists() else []
    present = {}
    for index, line in enumerate(lines):
        name, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            present[name.strip()] = (index, value.strip())
    written = []
    for name, make in GENERATED.items():
        if os.environ.get(name):
            continue
        index, value = present.get(name, (None, ""))
        if value:
            continue
        entry = f"{name}={make()}"
        if index is None:
            lines.append(entry)
        else:
            lines[index] = entry
        written.append(name)
    if written:
        # Owner-only before the first secret byte lands (write-then-chmod left a window).
        fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # an existing .env keeps its old mode through O_CREAT
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
    return written


def _load(args: argparse.Namespace) -> Settings:
    settings = Settings()
    if not settings.production and not getattr(args, "no_dev_keys", False):
        written = ensure_dev_keys(Path(".env"))
        if written:
            print(f"development: generated {', '.join(written)} into .env (keep it secret)")
            settings = Settings()
    return settings


async def _bootstrap_admin(settings: Settings, username: str, *, only_if_none: bool) -> None:
    from streamzy.wiring import build_services

    services = build_services(settings)
    try:
        async with services.db.unit() as db:
            admins = (await db.execute(select(func.count()).select_from(User)
                                       .where(User.is_admin.is_(True)))).scalar_one()
        if only_if_none and admins:
            return
        user, password = await services.accounts.create_user(username, "Administrator", "",
                                                             is_admin=True)
        await services.audit("account_changed", SYSTEM, None, action="create_admin",
                             target_user_id=user.id)
        print("=" * 64)
        print(f"First admin created: username {user.username!r}")
        print(f"One-time password (shown once, change it at first sign-in): {password}")
        print(f"It expires in {settings.one_time_password_hours} hours if unused.")
        print("=" * 64, flush=True)
    finally:
        await services.close()


def cmd_init(args: argparse.Namespace) -> int:
    settings = _load(args)
    validate_for_start(settings)
    _prepare_sqlite_dir(settings)
    upgrade(settings.database_url)
    print("database: migrations applied")
    asyncio.run(_bootstrap_admin(settings, args.admin_username, only_if_none=True))
    return 0


def _prepare_sqlite_dir(settings: Settings) -> None:
    if settings.database_url.startswith("sqlite") and ":///" in settings.database_url:
        path = settings.database_url.split(":///", 1)[1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


def cmd_create_admin(args: argparse.Namespace) -> int:
    settings = _load(args)
    validate_for_start(settings)
    asyncio.run(_bootstrap_admin(settings, args.username, only_if_none=False))
    return 0


def cmd_gen_key(args: argparse.Namespace) -> int:
    # A backup key is 32 random bytes for AES-256-GCM, not a Fernet key: kept apart so a
    # backup file and the master keys that open its messages are never the same secret.
    print(new_backup_key() if args.backup else Fernet.generate_key().decode())
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = Settings()
    if args.live:
        from streamzy.commands.health import check_live

        return check_live(settings, args.url)
    checks = production_checks(settings)
    print(f"mode: {settings.env}")
    for check in checks:
        print(f"[{'PASS' if check.ok else 'FAIL'}] {check.name}: {check.detail}")
    if not settings.backup_key.get_secret_value():
        print("[WARN] STREAMZY_BACKUP_KEY is not set: `streamzy backup` refuses to run "
              "(streamzy gen-key --backup; keep it apart from the message keys)")
    for warning in asyncio.run(_durability_warnings(settings)):
        print(f"[WARN] {warning}")
    keys = asyncio.run(_keys_check(settings))
    if keys is None:
        print("[WARN] keys: the database cannot be read yet (run `streamzy init`)")
    else:
        checks.append(keys)
        print(f"[{'PASS' if keys.ok else 'FAIL'}] {keys.name}: {keys.detail}")
    failed = [c for c in checks if not c.ok]
    print(f"{len(checks) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed and (settings.production or args.strict) else 0


async def _keys_check(settings: Settings) -> Check | None:
    """Does every live room key unwrap with the configured master keys? (The same check
    that refuses a start.) None when the database cannot be read."""
    from streamzy.storage.crypto import Keyring, KeyUnavailable, MasterKeys, unusable_message
    from streamzy.storage.db import Database

    try:
        master = MasterKeys([k.get_secret_value() for k in settings.message_keys])
    except (KeyUnavailable, ValueError):
        return Check("keys", False, "STREAMZY_MESSAGE_KEYS holds no usable Fernet key")
    db = Database(settings.database_url, 5)
    try:
        async with asyncio.timeout(30):
            keyring = Keyring(db, master, SystemClock())
            bad = await keyring.unusable_rooms()
            secrets = await keyring.unusable_secrets()
    except Exception:
        return None
    finally:
        await db.dispose()
    if bad or secrets:
        return Check("keys", False, unusable_message(bad, secrets))
    return Check("keys", True, f"every live room key and TOTP secret unwraps (newest master "
                               f"key {master.newest_id})")


async def _durability_warnings(settings: Settings) -> list[str]:
    """Settings of the database server that break "acked only after it is durable"."""
    if not settings.database_url.startswith("postgresql"):
        if settings.sqlite_synchronous != "FULL":
            return ["STREAMZY_SQLITE_SYNCHRONOUS=NORMAL: acked messages survive a killed "
                    "process but not power loss or an OS crash"]
        return []
    from sqlalchemy import text

    from streamzy.storage.db import make_engine

    engine = make_engine(settings.database_url, timeout=3)
    try:
        async with asyncio.timeout(5), engine.connect() as conn:
            value = (await conn.execute(text("SHOW synchronous_commit"))).scalar()
    except Exception as exc:
        return [f"could not read synchronous_commit from PostgreSQL ({type(exc).__name__})"]
    finally:
        await engine.dispose()
    if str(value).lower() in ("off", "local"):
        return [f"PostgreSQL synchronous_commit={value}: a commit may be acknowledged before it "
                "is durable (or replicated); set it to on (or remote_apply with replicas)"]
    return []


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = Settings()
    _prepare_sqlite_dir(settings)
    upgrade(settings.database_url, args.revision)
    print(f"database: at {args.revision}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from streamzy.app import create_app
    from streamzy.logs import configure as configure_logging
    from streamzy.serving import serve_in_process

    settings = _load(args)
    validate_for_start(settings)
    configure_logging(settings)  # JSON lines or text, before anything logs (Quart included)
    if not settings.production:
        _prepare_sqlite_dir(settings)
        upgrade(settings.database_url)
        asyncio.run(_bootstrap_admin(settings, "admin", only_if_none=True))
    app = create_app(settings)
    return serve_in_process(app, _hypercorn_config(args.config), args.host or settings.host,
                            args.port or settings.port, settings.env)


def _hypercorn_config(path: str) -> str:
    """The Hypercorn settings to serve with: ``--config``, else ./hypercorn.toml, else the
    copy shipped with the release (an installed server keeps the escaped access log, the
    uvloop worker and the size limits without a checkout)."""
    if path or Path("hypercorn.toml").exists():
        return path or "hypercorn.toml"
    return str(asset_path("hypercorn.toml"))


def cmd_version(args: argparse.Namespace) -> int:
    print(f"streamzy {__version__}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamzy", description=__doc__)
    parser.add_argument("--version", action="version", version=f"streamzy {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server (development: set up on first run)")
    serve.add_argument("--host", default="")
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument("--config", default="",
                       help="Hypercorn settings (default: ./hypercorn.toml, else the shipped one)")
    serve.set_defaults(func=cmd_serve)
    init = sub.add_parser("init", help="generate dev keys, migrate, create the first admin")
    init.add_argument("--admin-username", default="admin")
    init.set_defaults(func=cmd_init)
    admin = sub.add_parser("create-admin", help="create an admin with a one-time password")
    admin.add_argument("username")
    admin.set_defaults(func=cmd_create_admin)
    gen_key = sub.add_parser("gen-key", help="print a new Fernet key (a message key)")
    gen_key.add_argument("--backup", action="store_true",
                         help="print a backup key (STREAMZY_BACKUP_KEY) instead")
    gen_key.set_defaults(func=cmd_gen_key)
    check = sub.add_parser("check-config", help="print the production checklist")
    check.add_argument("--strict", action="store_true", help="fail on any FAIL, any mode")
    check.add_argument("--live", action="store_true",
                       help="score the running deployment (security health check); "
                            "exit 1 on any FAIL")
    check.add_argument("--url", default="",
                       help="with --live: the server's base URL (default http://HOST:PORT)")
    check.set_defaults(func=cmd_check_config)
    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("revision", nargs="?", default="head")
    migrate.set_defaults(func=cmd_migrate)
    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=cmd_version)
    register_all(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"streamzy: {exc}", file=sys.stderr)
        return 2
    except ServiceError as exc:
        print(f"streamzy: {exc.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
