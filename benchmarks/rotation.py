"""Chat latency during ``streamzy rotate-keys --data-keys`` (issue 15: p99 within 1.5x).

One room holding N sealed messages (default 1,000,000; bulk-inserted by
``fixtures.history_fixture``), a real Streamzy server (``streamzy serve`` in its own
process) and real Socket.IO clients sending at a steady rate. Ack latency is measured
first without rotation, then, in the same run, while ``streamzy rotate-keys --data-keys``
(another process, its default throttle unless told) re-encrypts every message. Prints
both, the ratio, and how fast the rotation went.

    python benchmarks/rotation.py                      # 1,000,000 messages
    python benchmarks/rotation.py --messages 20000 --seconds 5 --markdown out.md
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import socketio

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import fixtures  # noqa: E402 - after the path set-up for direct runs


@dataclass
class Phase:
    name: str
    latencies_ms: list[float]
    errors: int
    seconds: float

    def quantile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def row(self) -> str:
        rate = len(self.latencies_ms) / self.seconds if self.seconds else 0.0
        return (f"| {self.name} | {len(self.latencies_ms)} | {rate:.1f} | "
                f"{statistics.median(self.latencies_ms) if self.latencies_ms else 0:.1f} | "
                f"{self.quantile(0.99):.1f} | {self.errors} |")


def _port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _healthy(url: str, proc: subprocess.Popen[bytes], within: float = 120) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode}")
            try:
                if (await client.get(f"{url}/readyz", timeout=2)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("the server did not become ready")


async def _load(clients: list[socketio.AsyncClient], room: int, rate: float,
                until: Any, tag: str) -> tuple[list[float], int]:
    """Each client sends ``rate`` messages per second (open loop) until ``until()``."""
    latencies: list[float] = []
    errors = 0

    async def one(client: socketio.AsyncClient, index: int) -> None:
        nonlocal errors
        n = 0
        interval = 1.0 / rate
        next_at = time.monotonic()
        pending: set[asyncio.Task[None]] = set()

        async def send(cid: str) -> None:
            nonlocal errors
            started = time.perf_counter()
            try:
                ack = await client.call("message", {"room": room, "client_msg_id": cid,
                                                    "text": "steady chat " + "x" * 120},
                                        timeout=30)
            except Exception:
                errors += 1
                return
            if isinstance(ack, dict) and ack.get("ok"):
                latencies.append((time.perf_counter() - started) * 1000)
            else:
                errors += 1

        while not until():
            n += 1
            task = asyncio.create_task(send(f"{tag}-{index}-{n}"))
            pending.add(task)
            task.add_done_callback(pending.discard)
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        if pending:
            await asyncio.gather(*pending)

    await asyncio.gather(*(one(c, i) for i, c in enumerate(clients)))
    return latencies, errors


async def run(args: argparse.Namespace) -> str:
    workdir = Path(tempfile.mkdtemp(prefix="streamzy-rotation-"))
    keys = fixtures.Secrets()
    started = time.monotonic()
    fx = await asyncio.to_thread(fixtures.history_fixture, workdir, keys, args.messages,
                                 args.senders)
    seeded = time.monotonic() - started
    print(f"seeded {args.messages} sealed messages in {seeded:.1f} s", flush=True)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("STREAMZY_")},
           **fixtures.server_env(fx.db_url, keys, workdir), "PYTHONPATH": str(ROOT)}
    port = _port()
    server = subprocess.Popen([sys.executable, "-m", "streamzy.cli", "serve", "--port",  # noqa: ASYNC220 - Popen returns at once
                               str(port), "--config", str(ROOT / "hypercorn.toml")],
                              cwd=workdir, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    clients: list[socketio.AsyncClient] = []
    try:
        await _healthy(url, server)
        room = fx.rooms[0]
        for entry in fx.clients:
            client = socketio.AsyncClient(reconnection=False)
            await client.connect(url, headers={"Cookie": f"streamzy_session={entry['cookie']}"},
                                 transports=["websocket"], wait_timeout=10)
            joined = await client.call("join", {"room": room}, timeout=30)
            assert joined.get("ok"), joined
            clients.append(client)
        await _load(clients, room, args.rate, _after(1.0), "warm")
        t0 = time.monotonic()
        base, base_errors = await _load(clients, room, args.rate, _after(args.seconds), "base")
        baseline = Phase("steady chat, no rotation", base, base_errors, time.monotonic() - t0)
        command = [sys.executable, "-m", "streamzy.cli", "rotate-keys", "--data-keys",
                   "--no-progress", *args.rotate_args.split()]
        t0 = time.monotonic()
        rotation = subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.PIPE,  # noqa: ASYNC220 - Popen returns at once
                                    stderr=subprocess.PIPE, text=True)
        during, during_errors = await _load(clients, room, args.rate,
                                            lambda: rotation.poll() is not None, "rot")
        took = time.monotonic() - t0
        out, err = rotation.communicate(timeout=60)
        rotating = Phase("steady chat during rotate-keys --data-keys", during, during_errors,
                         took)
        if rotation.returncode != 0:
            raise RuntimeError(f"rotate-keys failed ({rotation.returncode}): {err[-2000:]}")
    finally:
        for client in clients:
            await client.disconnect()
        server.terminate()
        server.wait(30)
    ratio = rotating.quantile(0.99) / baseline.quantile(0.99)
    lines = [
        f"# Key rotation under chat load ({args.messages:,} messages)",
        "",
        f"- {len(fx.clients)} senders x {args.rate} msg/s each, one room, SQLite, one server "
        "process (`streamzy serve`), Python Socket.IO clients in this process",
        f"- `streamzy rotate-keys --data-keys {args.rotate_args}`: {took:.1f} s "
        f"({args.messages / took:,.0f} rows/s); seeding took {seeded:.1f} s",
        f"- rotate-keys said: {out.strip().splitlines()[-1] if out.strip() else '(nothing)'}",
        "",
        "| phase | acks | acks/s | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|",
        baseline.row(),
        rotating.row(),
        "",
        f"**p99 during rotation / p99 without: {ratio:.2f}x** (target <= 1.5x)",
    ]
    return "\n".join(lines) + "\n"


def _after(seconds: float) -> Any:
    end = time.monotonic() + seconds
    return lambda: time.monotonic() >= end


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--rate", type=float, default=5.0, help="messages/s per sender")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="measured seconds without rotation")
    parser.add_argument("--rotate-args", default="",
                        help="extra rotate-keys options, e.g. '--batch-size 500 --duty 0.3'")
    parser.add_argument("--markdown", default="", help="also write the table here")
    args = parser.parse_args(argv)
    report = asyncio.run(run(args))
    print(report)
    if args.markdown:
        Path(args.markdown).write_text(report, "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
