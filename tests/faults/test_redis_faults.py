"""Redis that restarts or hangs under two processes: nothing lost, nothing hung.

Two Streamzy processes share a private Redis (never the machine's). Clients behave like the
browser: on ``resync`` they join again with the last sequence they saw, and keep each
sequence number once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.realtime.helpers import ChatClient, connected


class CatchingUp(ChatClient):
    """Joins one room and, on the server's resync notice, catches up from history."""

    def __init__(self, url: str, cookie: str, room: int) -> None:
        super().__init__(url, cookie=cookie)
        self.room = room
        self.resyncs = 0
        self.sio.on("resync", self._resync)

    async def start(self) -> None:
        await self.connect()
        assert (await self.call("join", {"room": self.room}))["ok"]

    async def _resync(self, data: Any = None) -> None:
        self.resyncs += 1
        # The last seq before the first gap: live messages may already have arrived past it.
        seen = set(self.seqs())
        since = 0
        while since + 1 in seen:
            since += 1
        caught = await self.call("join", {"room": self.room, "since_seq": since})
        self.messages.extend(caught.get("messages", []))

    def seqs(self) -> list[int]:
        return sorted({m["seq"] for m in self.messages if m["room"] == self.room})


async def test_redis_restart_mid_stream_loses_nothing_across_processes(
        two_processes: dict[str, Any]) -> None:
    one, two, redis, room = (two_processes[k] for k in ("one", "two", "redis", "room"))
    ann = CatchingUp(one.url, two_processes["cookies"]["ann"], room)
    cat = CatchingUp(two.url, two_processes["cookies"]["cat"], room)
    await ann.start()
    await cat.start()
    acked: list[int] = []
    try:
        for k in range(60):
            if k == 15:
                redis.stop()
            if k == 35:
                await redis.start()  # same port
            ack = await ann.send(room, f"m{k}", f"c{k}")
            assert ack["ok"], ack  # stored and acked: the database is the source of truth
            acked.append(ack["seq"])
            await asyncio.sleep(0.1)
        # Every process noticed its own subscription was lost and told its clients.
        await cat.wait_for(lambda: cat.resyncs >= 1, timeout=10)
        await cat.wait_for(lambda: cat.seqs() == sorted(acked), timeout=10)
        assert sorted(acked) == list(range(1, 61))
        texts = {m["seq"]: m["text"] for m in cat.messages}
        assert [texts[s] for s in sorted(texts)] == [f"m{k}" for k in range(60)]
    finally:
        await ann.close()
        await cat.close()


async def test_hung_redis_keeps_chat_and_probes_answering(two_processes: dict[str, Any]) -> None:
    one, two, redis, room = (two_processes[k] for k in ("one", "two", "redis", "room"))
    cookies = two_processes["cookies"]
    ann = CatchingUp(one.url, cookies["ann"], room)
    ben = CatchingUp(one.url, cookies["ben"], room)
    cat = CatchingUp(two.url, cookies["cat"], room)
    for client in (ann, ben, cat):
        await client.start()
    try:
        redis.pause()
        for k in range(5):  # same-process chat goes on; each ack within a bounded wait
            ack = await ann.call("message", {"room": room, "client_msg_id": f"h{k}",
                                             "text": f"hung {k}"}, timeout=3)
            assert ack["ok"], ack
        await ben.wait_for(lambda: len(ben.seqs()) == 5, timeout=5)
        # A join while Redis hangs: answered within bounded waits, with this process's
        # view of who is online (Redis counts presence across processes).
        dan = await connected(one.url, cookie=cookies["dan"])
        joined = await dan.call("join", {"room": room}, timeout=5)
        assert joined["ok"] and joined["online_count"] >= 1, joined
        await dan.close()
        async with httpx.AsyncClient(base_url=one.url, timeout=1.5) as http:
            assert (await http.get("/healthz")).status_code == 200  # answered within 1.5 s
            ready = await http.get("/readyz")
            assert ready.status_code == 200 and ready.json()["database"] == "up"
        # A logout while Redis hangs still reaches the other process (session sweep, 1 s).
        async with httpx.AsyncClient(base_url=one.url, timeout=5,
                                     cookies={"streamzy_session": cookies["cat"]}) as http:
            page = await http.get("/account")
            token = page.text.split('name="csrf-token" content="')[1].split('"')[0]
            out = await http.post("/logout", data={"csrf_token": token})
            assert out.status_code in (302, 303), out.status_code
        await asyncio.wait_for(cat.disconnected.wait(), 6)  # sweep every 1 s: well inside
        assert cat.ended  # told its session ended (found by the sweep, not the push)
        redis.resume()
        ack = await ann.send(room, "after the hang", "after")
        assert ack["ok"]
        await ben.wait_for(lambda: "after the hang" in ben.texts(room), timeout=5)
    finally:
        redis.resume()
        for client in (ann, ben, cat):
            await client.close()
