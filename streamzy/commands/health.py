"""``check-config --live [--url URL]``: the security health check against a running server.

Settings and the database are read as the server reads them; the sign-in page is fetched
from URL (default ``http://STREAMZY_HOST:STREAMZY_PORT``) over HTTP with a timeout, so the
cookies and headers judged are those a browser gets, a proxy in front included. Prints
each item PASS/WARN/FAIL and the score; exits 1 when any item fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx

from streamzy.clock import SystemClock
from streamzy.config import Settings
from streamzy.services.health_check import HealthCheck
from streamzy.services.health_items import HealthReport, Served

FETCH_TIMEOUT = 10.0
CHECK_TIMEOUT = 120.0
LABEL = {"pass": "PASS", "warn": "WARN", "fail": "FAIL"}
PROBE_PATH = "/login"


def default_url(settings: Settings) -> str:
    wildcard = settings.host in ("0.0.0.0", "::", "")  # noqa: S104 - compared, never bound  # nosec B104
    return f"http://{'127.0.0.1' if wildcard else settings.host}:{settings.port}"


def http_probe(base_url: str) -> Callable[[], Awaitable[Served]]:
    """Fetch the sign-in page as a browser would (no redirects followed, no proxy from
    the environment), within FETCH_TIMEOUT."""
    url = base_url.rstrip("/") + PROBE_PATH

    async def probe() -> Served:
        async with httpx.AsyncClient(timeout=FETCH_TIMEOUT, follow_redirects=False,
                                     trust_env=False,
                                     headers={"User-Agent": "streamzy-check-config"}) as client:
            response = await client.get(url)
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1"))
                   for k, v in response.headers.raw]
        return Served(url, response.status_code, headers)

    return probe


async def run_live(settings: Settings, url: str) -> HealthReport:
    from streamzy.storage.crypto import Keyring, KeyUnavailable, MasterKeys
    from streamzy.storage.db import Database

    db = Database(settings.database_url, settings.database_timeout_seconds)
    try:
        try:
            master: MasterKeys | None = MasterKeys(
                [k.get_secret_value() for k in settings.message_keys])
        except (KeyUnavailable, ValueError):
            master = None

        async def unusable_rooms() -> int | None:
            if master is None:
                return None
            return await Keyring(db, master, SystemClock()).unusable_rooms()

        check = HealthCheck(db, SystemClock(), settings, unusable_rooms=unusable_rooms,
                            served=http_probe(url))
        async with asyncio.timeout(CHECK_TIMEOUT):
            return await check.run()
    finally:
        await db.dispose()


def print_report(report: HealthReport) -> None:
    for item in report.items:
        print(f"[{LABEL[item.status]}] {item.title}: {item.detail}")
    print(f"score {report.score}% ({report.count('pass')} passed, {report.count('warn')} "
          f"warnings, {report.count('fail')} failed)")


def check_live(settings: Settings, url: str) -> int:
    target = url or default_url(settings)
    print(f"mode: {settings.env}; live check of {target}")
    report = asyncio.run(run_live(settings, target))
    print_report(report)
    return 1 if report.failed else 0
