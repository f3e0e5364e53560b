"""A rolling restart: one of two processes restarts under load. Its clients are told, their
transport closes at once (not after the graceful timeout), they reconnect and catch up; no
message is lost or duplicated, and the refused-start exit code stays non-zero."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import socketio

from tests.faults.processes import ROOT, StreamzyProcess
from tests.faults.test_redis_faults import CatchingUp


class ServeProcess(StreamzyProcess):
    """``streamzy serve`` (what the systemd unit runs), which drains sockets on SIGTERM."""

    async def start(self) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("STREAMZY_")}
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "streamzy"), "serve", "--config",
             str(ROOT / "hypercorn.toml"), "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=self.cwd, env={**base, "PYTHONPATH": str(ROOT), **self.env},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        await self.wait_healthy()

    def terminate(self) -> int:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGTERM)
        return self.proc.wait(15)


class Reconnecting(CatchingUp):
    """Reconnects after any transport loss and joins again from the last seq it saw."""

    def __init__(self, url: str, cookie: str, room: int) -> None:
        super().__init__(url, cookie, room)
        self.restarts: list[Any] = []
        self.sio.on("restart", lambda data: self.restarts.append(data))

    async def rejoin(self) -> None:
        for _ in range(200):
            try:
                self.disconnected.clear()
                await self.connect()
                await self._resync()
                return
            except socketio.exceptions.ConnectionError:
                await asyncio.sleep(0.1)
        raise AssertionError("could not reconnect")


async def test_rolling_restart_loses_and_duplicates_nothing(
        two_processes: dict[str, Any], tmp_path: Path) -> None:
    one, room, cookies = two_processes["one"], two_processes["room"], two_processes["cookies"]
    two_processes["two"].stop()  # replaced by the `streamzy serve` process below
    two = ServeProcess(tmp_path, two_processes["two"].env)
    await two.start()
    ann = Reconnecting(one.url, cookies["ann"], room)
    cat = Reconnecting(two.url, cookies["cat"], room)
    await ann.start()
    await cat.start()
    acked: list[int] = []
    try:
        for k in range(40):
            if k == 10:
                assert two.terminate() == 0  # a clean stop, sockets closed first
                await asyncio.wait_for(cat.disconnected.wait(), 5)
                assert cat.restarts  # told why before the transport closed
                assert cat.restarts[0]["spread_seconds"] >= 1  # and to spread the reconnects
            if k == 20:
                await two.start()  # same port
                await cat.rejoin()
            ack = await ann.send(room, f"r{k}", f"r{k}")
            assert ack["ok"], ack
            acked.append(ack["seq"])
            await asyncio.sleep(0.05)
        await cat.wait_for(lambda: cat.seqs() == sorted(acked), timeout=10)
        seqs = [m["seq"] for m in cat.messages]
        assert sorted(set(seqs)) == sorted(acked)  # every one; duplicates only by seq
    finally:
        await ann.close()
        await cat.close()
        two.stop()
