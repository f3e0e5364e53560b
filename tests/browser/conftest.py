"""Real headless Chromium (Debian's, through Playwright) against Streamzy on a real Hypercorn.

Everything here runs on one session-wide event loop, so one browser serves every test while
each test still gets its own server and database. The ``server`` fixture below replaces the
suite-wide one: it binds a fixed port so it can restart in place (same port, same database
file, same settings and keys) for the reconnect journey.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from hypercorn.asyncio import serve
from hypercorn.config import Config

from streamzy.app import create_app
from streamzy.clock import ManualClock
from streamzy.config import Settings
from streamzy.guards.context import SYSTEM, RequestInfo
from streamzy.services.message_writer import Sender
from streamzy.storage.models import User
from tests.conftest import REQUIRE_SERVICES, SERVER_ERRORS, LiveServer, free_port
from tests.waiting import task_alive, wait_until_healthy

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
USER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "HeadlessChrome/120.0 Safari/537.36 streamzy-browser-tests")
# Written by the browser itself (not by a script) while the server is down on purpose.
NETWORK_NOISE = re.compile(r"WebSocket connection to .* failed|Failed to load resource: "
                           r"net::ERR_CONNECTION_(REFUSED|RESET|CLOSED)")


try:
    from playwright.async_api import expect
except ImportError:  # the browser fixture skips with the reason (or fails when required)
    expect = None


def chromium_path() -> str | None:
    """STREAMZY_CHROMIUM if set, else Debian's /usr/bin/chromium, else chromium on PATH."""
    chosen = os.environ.get("STREAMZY_CHROMIUM")
    if chosen is not None:
        return chosen if os.access(chosen, os.X_OK) else None
    if os.path.exists("/usr/bin/chromium"):
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(reason + " (STREAMZY_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


# -- the browser --------------------------------------------------------------------------
@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Any]:
    executable = chromium_path()
    if executable is None:
        _unavailable("Chromium not found: install Debian's chromium (/usr/bin/chromium) or set "
                     "STREAMZY_CHROMIUM to run the browser journeys")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _unavailable("the playwright Python package is not installed (pip install -e .[dev])")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable,
                                                    args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


# -- the server ---------------------------------------------------------------------------
class HangUp:
    """ASGI wrapper that can close every open websocket the way a restarting server does."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.open: set[Callable[[dict[str, Any]], Awaitable[None]]] = set()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        self.open.add(send)
        try:
            await self.app(scope, receive, send)
        finally:
            self.open.discard(send)

    async def hang_up(self) -> None:
        for send in list(self.open):
            with contextlib.suppress(Exception):  # it may be closing already
                await send({"type": "websocket.close", "code": 1012})  # 1012: service restart


class BrowserServer(LiveServer):
    """A LiveServer on a fixed port that can stop and start again in place."""

    def __init__(self, settings: Settings, clock: ManualClock, port: int) -> None:
        self.settings = settings
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._hangup = HangUp(None)
        super().__init__(create_app(settings, clock), clock, port)

    async def start(self) -> None:
        config = Config()
        config.bind = [f"127.0.0.1:{self.port}"]
        config.accesslog = None
        config.errorlog = SERVER_ERRORS
        config.graceful_timeout = 1
        self._stop = asyncio.Event()
        self._hangup = HangUp(self.app)
        self._task = asyncio.create_task(
            serve(self._hangup, config, shutdown_trigger=self._stop.wait))  # type: ignore[arg-type]
        await wait_until_healthy(self.url, alive=task_alive(self._task))

    async def stop(self) -> None:
        if self._stop is None or self._task is None:
            return
        self._stop.set()
        # Hypercorn stops listening, then waits for open connections to finish. A browser's
        # websocket never does, so once the port is closed, close them as a restarting
        # server does: the page sees its transport close, and its reconnects are refused.
        for _ in range(300):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                break
            writer.close()
            await asyncio.sleep(0.01)
        await self._hangup.hang_up()
        done, _ = await asyncio.wait({self._task}, timeout=3)
        if not done:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.services.close()
        self._stop = self._task = None

    async def restart(self, while_down: Callable[[BrowserServer], Awaitable[None]] | None
                      = None) -> None:
        """Stop, build a new app on the same database and keys, then serve the same port.

        ``while_down`` runs against the new app before it accepts connections, so whatever
        it stores is guaranteed to reach the browser through the resume path, not live.
        """
        await self.stop()
        self.app = create_app(self.settings, self.clock)
        self.services = self.app.services
        if while_down is not None:
            await while_down(self)
        await self.start()

    # -- shortcuts for arranging a journey ------------------------------------------------
    async def admin(self, username: str = "admin") -> User:
        """The admin called ``username``, created on first use."""
        found = await self.services.accounts.by_username(username)
        return found if found is not None else await self.make_user(username, admin=True)

    async def room(self, name: str, *, private: bool = False, topic: str = "") -> int:
        owner = await self.admin()
        room = await self.services.rooms.create(owner.id, name, topic, private, SYSTEM)
        return int(room.id)

    async def post(self, room_id: int, user: User, text: str, client_msg_id: str) -> int:
        """Store a message as ``user`` (as if sent from elsewhere); returns its seq."""
        room = await self.services.rooms.get(room_id)
        sender = Sender(user.id, user.username, user.display_name, False)
        result = await self.services.messages.send(sender, room, client_msg_id, text, SYSTEM)
        return int(result.seq)

    async def cookie_for(self, user: User) -> str:
        token, _ = await self.services.sessions.issue(
            user.id, RequestInfo("127.0.0.1", USER_AGENT, ""))
        return token


@pytest.fixture
def server_settings() -> dict[str, Any]:
    """Override in a module to change settings (merged over the browser defaults)."""
    return {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "settings(**values): settings for this test's server")


@pytest_asyncio.fixture(loop_scope="session")
async def server(request: pytest.FixtureRequest, settings_factory: Callable[..., Settings],
                 server_settings: dict[str, Any]) -> AsyncIterator[BrowserServer]:
    # One browser page load fetches several static files, all counted as "pages" per
    # address, and the manual clock never refills the bucket: lift that limit here.
    values: dict[str, Any] = {"rate_pages": "100000/m", **server_settings}
    marker = request.node.get_closest_marker("settings")
    if marker is not None:
        values.update(marker.kwargs)
    settings = settings_factory(**values)
    live = BrowserServer(settings, ManualClock(), free_port())
    await live.start()
    try:
        yield live
    finally:
        await live.stop()


# -- pages that record what went wrong -----------------------------------------------------
@dataclass
class Browsing:
    """Opens contexts and pages, and records console errors, page errors and dialogs."""

    browser: Any
    server: BrowserServer
    contexts: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    allow: re.Pattern[str] | None = None

    def _watch(self, page: Any) -> None:
        def on_console(message: Any) -> None:
            if message.type == "error":
                self.errors.append(f"console: {message.text} @ {page.url}")

        async def on_dialog(dialog: Any) -> None:
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            await dialog.dismiss()

        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc} @ {page.url}"))
        page.on("dialog", on_dialog)

    async def context(self, *, cookie: str | None = None, phone: bool = False,
                      viewport: dict[str, int] | None = None, **options: Any) -> Any:
        """A new context: a phone (375x740 unless ``viewport`` says) or a desktop window."""
        if viewport is None:
            viewport = {"width": 375, "height": 740} if phone else {"width": 1280, "height": 820}
        context = await self.browser.new_context(
            base_url=self.server.url, viewport=viewport, user_agent=USER_AGENT,
            device_scale_factor=2 if phone else 1, has_touch=phone, is_mobile=phone,
            **options)
        context.set_default_timeout(10_000)
        context.on("page", self._watch)
        if cookie is not None:
            await context.add_cookies([{"name": "streamzy_session", "value": cookie,
                                        "url": self.server.url}])
        self.contexts.append(context)
        return context

    async def page(self, user: User | None = None, **options: Any) -> Any:
        """A new page in its own context; signed in as ``user`` when given."""
        cookie = await self.server.cookie_for(user) if user is not None else None
        context = await self.context(cookie=cookie, **options)
        return await context.new_page()

    def problems(self) -> list[str]:
        return [e for e in self.errors if not (self.allow and self.allow.search(e))]

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()


@pytest_asyncio.fixture(loop_scope="session")
async def browsing(browser: Any, server: BrowserServer) -> AsyncIterator[Browsing]:
    session = Browsing(browser, server)
    try:
        yield session
    finally:
        await session.close()
    assert session.problems() == [], "the browser reported errors (CSP or script)"
    assert session.dialogs == [], "a dialog opened"


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
