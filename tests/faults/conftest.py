"""Fixtures of the fault tests: private PostgreSQL and Redis instances the tests may stop,
hang and restart (never the machine's shared services), and two Streamzy processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from streamzy.guards.context import SYSTEM
from tests.faults.processes import (
    PrivatePostgres,
    PrivateRedis,
    StreamzyProcess,
    admin_services,
    secrets_env,
    user_session,
)


@pytest.fixture
async def private_pg() -> AsyncIterator[PrivatePostgres]:
    pg = PrivatePostgres()
    await asyncio.to_thread(pg.init)
    await asyncio.to_thread(pg.start)
    try:
        yield pg
    finally:
        await asyncio.to_thread(pg.resume)
        await asyncio.to_thread(pg.destroy)


@pytest.fixture
async def two_processes(tmp_path: Path, database_url: str) -> AsyncIterator[dict[str, Any]]:
    redis = PrivateRedis()
    await redis.start()
    env = {**secrets_env(), "STREAMZY_DATABASE_URL": database_url,
           "STREAMZY_REDIS_URL": redis.url, "STREAMZY_SESSION_SWEEP_SECONDS": "1",
           "STREAMZY_RATE_MESSAGES": "1000/m", "STREAMZY_AUDIT_LOG_PATH": str(tmp_path / "a.log"),
           "STREAMZY_PRESENCE_PROCESS_TIMEOUT_SECONDS": "2"}
    services = admin_services(env)
    admin, _ = await services.accounts.create_user("boss", "Boss", "", is_admin=True)
    room = (await services.rooms.create(admin.id, "general", "", False, SYSTEM)).id
    cookies = {n: await user_session(services, n) for n in ("ann", "ben", "cat", "dan")}
    await services.close()
    one, two = StreamzyProcess(tmp_path, env), StreamzyProcess(tmp_path, env)
    await one.start()
    await two.start()
    try:
        yield {"redis": redis, "one": one, "two": two, "room": room, "cookies": cookies}
    finally:
        one.stop()
        two.stop()
        redis.stop()
