"""kill -9 mid-conversation: every acked message survives exactly once; retries dedupe."""

from __future__ import annotations

import asyncio
from pathlib import Path

import socketio

from streamzy.guards.context import SYSTEM
from tests.faults.processes import StreamzyProcess, admin_services, secrets_env, user_session
from tests.realtime.helpers import connected
from tests.waiting import wait_until


async def test_kill9_while_sending_loses_no_acked_message(
        tmp_path: Path, database_url: str) -> None:
    env = {**secrets_env(), "STREAMZY_DATABASE_URL": database_url,
           "STREAMZY_RATE_MESSAGES": "100000/m", "STREAMZY_RATE_SOCKET_EVENTS": "100000/m",
           "STREAMZY_AUDIT_LOG_PATH": str(tmp_path / "audit.log")}
    services = admin_services(env)
    admin, _ = await services.accounts.create_user("boss", "Boss", "", is_admin=True)
    room = (await services.rooms.create(admin.id, "general", "", False, SYSTEM)).id
    names = ["ann", "ben", "cat"]
    cookies = {name: await user_session(services, name) for name in names}
    await services.close()

    server = StreamzyProcess(tmp_path, env)
    await server.start()
    acked: dict[str, dict] = {}
    unacked: dict[str, list[str]] = {name: [] for name in names}

    async def sender(name: str) -> None:
        client = await connected(server.url, cookie=cookies[name], rooms=[room])
        for k in range(10_000):
            cmid = f"{name}-{k:05d}"
            try:
                ack = await client.call("message", {"room": room, "client_msg_id": cmid,
                                                    "text": f"{name} says {k}"}, timeout=3)
            except (socketio.exceptions.TimeoutError, socketio.exceptions.BadNamespaceError,
                    socketio.exceptions.DisconnectedError):
                unacked[name].append(cmid)
                return
            if ack.get("ok"):
                acked[cmid] = ack
            else:
                unacked[name].append(cmid)

    try:
        tasks = [asyncio.create_task(sender(name)) for name in names]
        await wait_until(lambda: len(acked) >= 150 or all(t.done() for t in tasks),
                         timeout=60, what="150 acknowledged messages")
        server.kill9()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
        assert len(acked) >= 150

        await server.start()  # same port, same database
        retried: dict[str, dict] = {}
        for name in names:
            client = await connected(server.url, cookie=cookies[name], rooms=[room])
            # Retry what was never acked, and re-send a few that were: neither duplicates.
            again = unacked[name] + [c for c in acked if c.startswith(name)][-3:]
            for cmid in again:
                k = int(cmid.split("-")[1])
                ack = await client.call("message", {"room": room, "client_msg_id": cmid,
                                                    "text": f"{name} says {k}"})
                assert ack["ok"], ack
                retried[cmid] = ack
            await client.close()
        for cmid, ack in retried.items():
            if cmid in acked:
                assert ack["duplicate"] and ack["seq"] == acked[cmid]["seq"]

        reader = await connected(server.url, cookie=cookies["ann"])
        joined = await reader.call("join", {"room": room, "since_seq": 0})
        history = list(joined["messages"])
        while joined["has_more"]:
            joined = await reader.call("join", {"room": room,
                                                "since_seq": history[-1]["seq"]})
            history.extend(joined["messages"])
        await reader.close()
    finally:
        server.stop()

    seqs = [m["seq"] for m in history]
    assert seqs == list(range(1, len(seqs) + 1))  # in order, no gaps
    cmids = [m["client_msg_id"] for m in history]
    assert len(cmids) == len(set(cmids))  # exactly once
    assert set(acked) <= set(cmids)  # every acked message survived
    assert set(retried) <= set(cmids)
    for name in names:  # each sender's messages keep their order
        own = [c for c in cmids if c.startswith(name)]
        assert own == sorted(own)
