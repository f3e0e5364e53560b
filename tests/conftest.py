"""Fixtures that start the real app: a real Hypercorn on 127.0.0.1, a real database."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from hypercorn.asyncio import serve
from hypercorn.config import Config
from sqlalchemy import select, update

from streamzy.app import StreamzyApp, create_app
from streamzy.clock import ManualClock
from streamzy.config import Settings
from streamzy.guards.context import RequestInfo
from streamzy.storage.migrate import upgrade
from streamzy.storage.models import AuditEvent, User
from streamzy.wiring import Services, build_services
from tests.waiting import task_alive, wait_until_healthy

ROOT = Path(__file__).resolve().parents[1]
REQUIRE_SERVICES = os.environ.get("STREAMZY_REQUIRE_SERVICES") == "1"
TEST_PASSWORD = "a sturdy passphrase 4 tests"
# Who is asking, for tests that call services directly (documentation range address).
CLIENT = RequestInfo("203.0.113.9", "streamzy-tests/1.0", "req-test")
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def need_service(env_name: str, what: str) -> str:
    """The URL of an external service, or skip (fail when CI requires services)."""
    url = os.environ.get(env_name, "")
    if not url:
        message = f"{what} not configured: set {env_name} to run this test"
        if REQUIRE_SERVICES:
            pytest.fail(message + " (STREAMZY_REQUIRE_SERVICES=1)")
        pytest.skip(message)
    return url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


BACKEND = os.environ.get("STREAMZY_TEST_BACKEND", "sqlite")
# Hypercorn's error log (an app that raised, a 500 it answered itself) goes through logging,
# so pytest shows it with a failing test instead of dropping it.
SERVER_ERRORS = logging.getLogger("hypercorn.error")

# Tiers, marked here so a new test file lands in the right one without remembering to:
# ``-m "not browser and not faults and not slow"`` is the quick loop (see README, Tests).
TIER_BY_DIRECTORY = {"browser": "browser", "faults": "faults"}
# Files whose tests start other processes (servers, nginx, the CLI) or several servers, or
# run hundreds of generated cases or the scanners; single tests elsewhere that do so carry
# @pytest.mark.slow themselves. CI runs every tier.
SLOW_PATHS = (
    "benchmarks/",
    "deploy/",
    "realtime/test_example_bot.py",
    "realtime/test_fuzz_events.py",
    "realtime/test_multiprocess.py",
    "realtime/test_uvicorn.py",
    "test_cli.py",
    "test_static_checks.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests_dir = Path(__file__).resolve().parent
    for item in items:
        try:
            relative = item.path.resolve().relative_to(tests_dir).as_posix()
        except ValueError:  # collected from outside tests/
            continue
        tier = TIER_BY_DIRECTORY.get(relative.split("/", 1)[0])
        if tier is not None:
            item.add_marker(tier)
        if relative.startswith(SLOW_PATHS):
            item.add_marker("slow")


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrate once through Alembic; every test gets a copy of the migrated file."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


def _pg_admin(url: str) -> str:
    """asyncpg DSN of the database named in STREAMZY_TEST_DATABASE_URL (for CREATE DATABASE)."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _pg_url(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


async def _pg_execute(url: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_pg_admin(url))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_template() -> Any:
    """PostgreSQL mode: one migrated template database, copied per test."""
    if BACKEND != "postgres":
        yield None
        return
    base = need_service("STREAMZY_TEST_DATABASE_URL", "PostgreSQL")
    name = f"streamzy_tpl_{os.getpid()}"
    asyncio.run(_pg_execute(base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)",
                            f"CREATE DATABASE {name}"))
    upgrade(_pg_url(base, name))
    yield base, name
    asyncio.run(_pg_execute(base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture
async def database_url(tmp_path: Path, template_db: Path, pg_template: Any) -> Any:
    """A fresh, migrated database for one test: SQLite by default, or PostgreSQL when
    STREAMZY_TEST_BACKEND=postgres (then the whole suite runs against PostgreSQL)."""
    if pg_template is None:
        db_file = tmp_path / "streamzy.db"
        shutil.copy(template_db, db_file)
        yield f"sqlite+aiosqlite:///{db_file}"
        return
    base, template = pg_template
    name = f"streamzy_t_{uuid.uuid4().hex[:12]}"
    await _pg_execute(base, f"CREATE DATABASE {name} TEMPLATE {template}")
    yield _pg_url(base, name)
    await _pg_execute(base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "secret_key": "test-secret-" + "x9" * 20,
        "password_pepper": "test-pepper-" + "y8" * 20,
        "message_keys": [Fernet.generate_key().decode()],
        "bcrypt_rounds": 4,
        # Tests run the session sweep themselves (sweep_once), so a ManualClock jump is
        # never raced by a periodic one.
        "session_sweep_seconds": 0,
        "audit_log_path": str(tmp_path / "logs" / "security_audit.log"),
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class LiveServer:
    """A running Hypercorn serving the app, plus helpers that talk to it like a browser."""

    def __init__(self, app: StreamzyApp, clock: ManualClock, port: int) -> None:
        self.app = app
        self.clock = clock
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.services = app.services

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        headers = {"User-Agent": "streamzy-tests/1.0", **kwargs.pop("headers", {})}
        return httpx.AsyncClient(base_url=self.url, headers=headers, follow_redirects=False,
                                 timeout=10, **kwargs)

    async def make_user(self, username: str, password: str = TEST_PASSWORD, *,
                        admin: bool = False, must_change: bool = False) -> User:
        return await make_user(self.services, username, password, admin=admin,
                               must_change=must_change)

    async def audit_rows(self, event: str | None = None) -> list[AuditEvent]:
        return await audit_rows(self.services, event)


async def make_user(services: Services, username: str, password: str = TEST_PASSWORD, *,
                    admin: bool = False, must_change: bool = False) -> User:
    """An active account with a known password (no one-time password to change by default)."""
    user, _ = await services.accounts.create_user(username, username.title(),
                                                  f"{username}@example.org", is_admin=admin)
    hashed = await services.hasher.hash(password)
    async with services.db.unit() as db:
        await db.execute(update(User).where(User.id == user.id).values(
            password_hash=hashed, must_change_password=must_change, password_expires_at=None))
    return user


async def audit_rows(services: Services, event: str | None = None) -> list[AuditEvent]:
    """The audit table, oldest first; only ``event`` rows when given."""
    async with services.db.unit() as db:
        query = select(AuditEvent).order_by(AuditEvent.id)
        if event:
            query = query.where(AuditEvent.event == event)
        return list((await db.execute(query)).scalars())


async def csrf_of(client: httpx.AsyncClient, path: str = "/login") -> str:
    page = await client.get(path)
    match = CSRF_META.search(page.text)
    assert match, f"no csrf token on {path}: {page.status_code}"
    return match.group(1)


async def login(client: httpx.AsyncClient, username: str,
                password: str = TEST_PASSWORD) -> httpx.Response:
    token = await csrf_of(client, "/login")
    return await client.post("/login", data={"username": username, "password": password,
                                              "csrf_token": token})


async def post_form(client: httpx.AsyncClient, path: str, data: dict[str, str] | None = None,
                    page: str = "/account") -> httpx.Response:
    token = await csrf_of(client, page)
    return await client.post(path, data={**(data or {}), "csrf_token": token})


async def start_server(settings: Settings, clock: ManualClock, *,
                       access_log: bool = False) -> tuple[LiveServer, Callable]:
    app = create_app(settings, clock)
    port = free_port()
    config = Config.from_toml(ROOT / "hypercorn.toml")  # the shipped limits, not defaults
    config.workers = 1  # serve() is in-process regardless; 0 (for Hypercorn's CLI) only warns
    config.bind = [f"127.0.0.1:{port}"]
    # The access log as hypercorn.toml sets it up (escaped, to stdout), for the tests of it.
    config.accesslog = "-" if access_log else None
    config.errorlog = SERVER_ERRORS
    config.graceful_timeout = 1
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    server = LiveServer(app, clock, port)
    await wait_until_healthy(server.url, alive=task_alive(task))

    async def shutdown() -> None:
        stop.set()
        # Hypercorn waits for open websockets to close; a test that failed mid-way may have
        # left some, so don't let teardown hang on them.
        done, _ = await asyncio.wait({task}, timeout=3)
        if not done:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await app.services.close()

    return server, shutdown


@pytest.fixture
def clock() -> ManualClock:
    """The time every service reads in a test: it moves only when the test says so."""
    return ManualClock()


@pytest.fixture
async def services(tmp_path: Path, database_url: str,
                   clock: ManualClock) -> AsyncIterator[Services]:
    """Every service and guard on a fresh migrated database, with no server around them."""
    built = build_services(make_settings(tmp_path, database_url), clock)
    try:
        yield built
    finally:
        await built.close()


@pytest.fixture
def settings_factory(tmp_path: Path, database_url: str) -> Callable[..., Settings]:
    def factory(**overrides: Any) -> Settings:
        return make_settings(tmp_path, database_url, **overrides)
    return factory


@pytest.fixture
def server_settings() -> dict[str, Any]:
    """Override in a test module to change the settings of the ``server`` fixture."""
    return {}


@pytest.fixture
async def server(settings_factory: Callable[..., Settings],
                 server_settings: dict[str, Any]) -> AsyncIterator[LiveServer]:
    clock = ManualClock()
    live, shutdown = await start_server(settings_factory(**server_settings), clock)
    try:
        yield live
    finally:
        await shutdown()
