"""Servers (and Redis) as pinned subprocesses: the same command line for Streamzy and the
baseline, a bounded wait until they answer, and a stop that always ends them."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness.config import APPS, HOST, LOOP, ROOT, SERVER_CPU


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def server_command(server: str, app: str, port: int) -> list[str]:
    """The same server settings for Streamzy and the baseline."""
    uvloop = LOOP["name"] == "uvloop"
    if server == "hypercorn":
        return [sys.executable, "-m", "hypercorn", "-c", str(ROOT / "hypercorn.toml"),
                "--worker-class", "uvloop" if uvloop else "asyncio",
                "--bind", f"{HOST}:{port}", app]
    if server == "uvicorn":
        # Uvicorn twins of hypercorn.toml: 64 KiB websocket frames, 15 s keep-alive,
        # 5 s graceful shutdown. Access logging stays on like Hypercorn's.
        return [sys.executable, "-m", "uvicorn", "--host", HOST, "--port", str(port),
                "--ws-max-size", "65536", "--timeout-keep-alive", "15",
                "--timeout-graceful-shutdown", "5", "--log-level", "info",
                "--loop", "uvloop" if uvloop else "asyncio", app]
    raise ValueError(server)


@dataclass
class Server:
    name: str  # streamzy | baseline
    kind: str  # hypercorn | uvicorn
    port: int
    proc: subprocess.Popen[bytes]
    logfile: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def worker_pid(self) -> int:
        """The process that runs the app (Hypercorn forks one worker)."""
        kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        with suppress(OSError):
            for pid in kids.read_text().split():
                # skip multiprocessing's resource tracker
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return int(pid)
        return self.proc.pid


def start_server(name: str, kind: str, workdir: Path, env: dict[str, str],
                 cpu: int = SERVER_CPU, port: int | None = None,
                 app: str | None = None) -> Server:
    """Start app ``name`` (a key of APPS) under ``kind`` on ``cpu``; return once it answers.
    ``app``: another ASGI app to run under that name (a wrapper such as the memory probe)."""
    port = port or free_port()
    logfile = workdir / f"{name}-{kind}-{port}.log"
    cmd = ["taskset", "-c", str(cpu), *server_command(kind, app or APPS[name], port)]
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=logfile.open("wb"),
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env={**os.environ, **env, "PYTHONPATH": str(ROOT)})
    server = Server(name, kind, port, proc, logfile)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"{name}/{kind} exited:\n{logfile.read_text()[-3000:]}")
        try:
            # http://127.0.0.1 only; Origin set because Streamzy answers 500 without one
            request = urllib.request.Request(  # noqa: S310
                f"{server.url}/socket.io/?EIO=4&transport=polling",
                headers={"Origin": server.url})
            with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{name}/{kind} did not come up in 60 s: see {logfile}")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its descendants, from /proc as
    loadgen.js's procSample reads them."""
    total, stack, tick = 0.0, [pid], os.sysconf("SC_CLK_TCK")
    while stack:
        current = stack.pop()
        with suppress(OSError, ValueError):
            stat = Path(f"/proc/{current}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        with suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                with suppress(OSError):
                    stack.extend(int(kid) for kid in (task / "children").read_text().split())
    return total


def wait_idle(servers: list[Server], limit: float, threshold: float = 0.05) -> float:
    """Wait (at most ``limit`` s) until the servers' process trees use less than ``threshold``
    of a core over one second, so that what an earlier run set off (thousands of disconnects
    and what they announce) is over before the next one; returns the seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        before = sum(tree_cpu_seconds(s.proc.pid) for s in servers)
        time.sleep(1.0)
        if sum(tree_cpu_seconds(s.proc.pid) for s in servers) - before < threshold:
            break
    return time.monotonic() - t0


def redis_server(workdir: Path, cpu: int) -> tuple[subprocess.Popen[bytes], str]:
    """A private, non-persistent redis-server on ``cpu``; returns it and its URL."""
    binary = shutil.which("redis-server")
    if not binary:
        raise RuntimeError("redis-server not found")
    port = free_port()
    proc = subprocess.Popen(["taskset", "-c", str(cpu), binary, "--port", str(port), "--bind",
                             HOST, "--save", "", "--appendonly", "no"], cwd=workdir,
                            stdout=(workdir / "redis.log").open("wb"), stderr=subprocess.STDOUT)
    for _ in range(100):
        with suppress(OSError), socket.create_connection((HOST, port), timeout=0.2):
            return proc, f"redis://{HOST}:{port}/0"
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")
