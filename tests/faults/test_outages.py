"""Database and Redis outages: clear errors, no false acks, recovery without a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from streamzy.guards.context import SYSTEM
from streamzy.storage.migrate import upgrade_async
from tests.faults.processes import (
    PrivatePostgres,
    StreamzyProcess,
    admin_services,
    secrets_env,
    user_session,
)
from tests.realtime.helpers import ChatClient, connected
from tests.waiting import wait_until


async def test_database_outage_gives_errors_not_acks_and_recovers(
        tmp_path: Path, private_pg: PrivatePostgres) -> None:
    await upgrade_async(private_pg.url)
    env = {**secrets_env(), "STREAMZY_DATABASE_URL": private_pg.url,
           "STREAMZY_AUDIT_LOG_PATH": str(tmp_path / "audit.log")}
    services = admin_services(env)
    admin, _ = await services.accounts.create_user("boss", "Boss", "", is_admin=True)
    room = (await services.rooms.create(admin.id, "general", "", False, SYSTEM)).id
    cookie = await user_session(services, "ann")
    await services.close()
    server = StreamzyProcess(tmp_path, env)
    await server.start()
    client = await connected(server.url, cookie=cookie, rooms=[room])
    try:
        assert (await client.send(room, "before the outage", "m-1"))["ok"]

        await asyncio.to_thread(private_pg.stop)
        during = [await client.send(room, f"during {k}", f"m-d{k}") for k in range(3)]
        assert all(not ack["ok"] for ack in during)
        assert {ack["code"] for ack in during} <= {"unavailable", "store_failed"}
        async with httpx.AsyncClient(base_url=server.url) as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 503 and ready.json()["database"] == "down"
            assert (await http.get("/healthz")).status_code == 200
            page = await http.get("/login")  # needs no database: still served
            token = page.text.split('name="csrf-token" content="')[1].split('"')[0]
            login = await http.post("/login", data={"username": "ann", "password": "x" * 12,
                                                    "csrf_token": token})
            assert login.status_code == 503 and "Traceback" not in login.text
            assert login.headers["Retry-After"] == "5"

        await asyncio.to_thread(private_pg.start)
        async def stored_again() -> bool:  # the pool reconnects by itself: no restart
            return bool((await client.send(room, "after the outage", "m-2"))["ok"])

        await wait_until(stored_again, interval=0.1, what="sends to be stored again")
        retried = await client.send(room, "during 0", "m-d0")  # the client retries its failures
        assert retried["ok"] and not retried["duplicate"]
        history = await client.call("history", {"room": room})
        assert [m["client_msg_id"] for m in history["messages"]] == ["m-1", "m-2", "m-d0"]
    finally:
        await client.close()
        server.stop()


async def test_redis_outage_keeps_local_chat_and_fails_closed_for_login(
        two_processes: dict[str, Any]) -> None:
    one, two, redis, room = (two_processes[k] for k in ("one", "two", "redis", "room"))
    cookies = two_processes["cookies"]
    ann = ChatClient(one.url, cookie=cookies["ann"])
    ben = ChatClient(one.url, cookie=cookies["ben"])
    cat = ChatClient(two.url, cookie=cookies["cat"])
    resyncs: list[dict] = []
    cat.sio.on("resync", lambda data: resyncs.append(data))
    try:
        for client in (ann, ben, cat):
            await client.connect()
            await client.call("join", {"room": room})
        await ann.send(room, "all up")
        await cat.wait_for(lambda: cat.texts(room) == ["all up"])

        redis.stop()
        ack = await ann.send(room, "redis is down")
        assert ack["ok"]  # stored and acked: the database is the source of truth
        await ben.wait_for(lambda: "redis is down" in ben.texts(room))  # same process: live
        async with httpx.AsyncClient(base_url=one.url) as http:
            page = await http.get("/login")
            token = page.text.split('name="csrf-token" content="')[1].split('"')[0]
            login = await http.post("/login", data={"username": "ann", "password": "x",
                                                    "csrf_token": token})
            assert login.status_code == 503  # fails closed: no unlimited password guessing
            assert int(login.headers["Retry-After"]) > 0

        await redis.start()  # same port
        async def resynced() -> bool:  # the next publish notices Redis is back: a resync
            await ann.send(room, "redis is back")
            return bool(resyncs)

        await wait_until(resynced, interval=0.1, what="a resync once Redis is back")
        last_seen = max(m["seq"] for m in cat.messages)
        caught_up = await cat.call("join", {"room": room, "since_seq": 1})
        texts = [m["text"] for m in caught_up["messages"]]
        assert "redis is down" in texts  # cross-process catch-up through resume
        assert last_seen >= 1
    finally:
        for client in (ann, ben, cat):
            await client.close()
