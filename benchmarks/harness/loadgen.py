"""The driver of the Node load generator (benchmarks/node/loadgen.js): one JSON config in,
one JSON line per phase out, pinned to the load core. Python never generates load itself,
so the runner's own CPU never competes with the server's."""

from __future__ import annotations

import json
import select
import subprocess
from contextlib import suppress
from pathlib import Path
from typing import Any

from benchmarks.harness.config import LOAD_CPU, LOADGEN, NODE_DIR, SERVER_CPU, log
from benchmarks.harness.processes import Server


def installed() -> bool:
    """Whether the generator's one dependency (ws, pinned in package-lock.json) is there."""
    return (NODE_DIR / "node_modules" / "ws").exists()


def ensure_installed() -> None:
    if not installed():
        log("installing the load generator: npm ci in benchmarks/node")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True)


class LoadGen:
    """One Node load generator holding its clients connected; runs phases on request."""

    def __init__(self, config: dict[str, Any], workdir: Path, tag: str,
                 timeout: float = 600) -> None:
        self.path = workdir / f"loadgen-{tag}.json"
        self.path.write_text(json.dumps(config))
        self.stderr = (workdir / f"loadgen-{tag}.log").open("wb")
        self.proc = subprocess.Popen(
            ["taskset", "-c", str(LOAD_CPU), "node", str(LOADGEN), str(self.path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self.timeout = timeout
        self.hello = self._read(timeout)

    def warm(self, rate: float) -> None:
        """An unrecorded phase: first-use costs (caches, lazily built paths) stay out."""
        self.phase(rate=rate, duration=2, warmup=0, drain=3)

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.close()
            raise RuntimeError(f"load generator silent for {timeout:.0f} s")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"load generator ended (rc={self.proc.wait(5)}); "
                               f"see {self.stderr.name}")
        return json.loads(line)

    def phase(self, **phase: Any) -> dict[str, Any]:
        """Run one phase (rate, duration, warmup, drain, ...) and return its measurements."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(phase) + "\n")
        self.proc.stdin.flush()
        limit = phase.get("warmup", 0) + phase["duration"] + phase.get("drain", 5) + 30
        return self._read(limit)

    def close(self) -> None:
        if self.proc.poll() is None:
            with suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.stderr.close()


def run_loadgen_once(config: dict[str, Any], workdir: Path, tag: str,
                     timeout: float) -> dict[str, Any]:
    """A non-interactive run (idle, history): the generator's last line is the result."""
    path = workdir / f"loadgen-{tag}.json"
    path.write_text(json.dumps(config))
    with (workdir / f"loadgen-{tag}.log").open("wb") as err:
        done = subprocess.run(["taskset", "-c", str(LOAD_CPU), "node", str(LOADGEN), str(path)],
                              stdout=subprocess.PIPE, stderr=err, text=True, timeout=timeout,
                              check=False)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if not lines:
        raise RuntimeError(f"load generator printed nothing (rc={done.returncode})")
    return json.loads(lines[-1])


def chat_config(server: Server, clients: list[dict[str, Any]], senders: list[int],
                deadline: float) -> dict[str, Any]:
    """An interactive chat generator for ``clients`` of ``server``, ``senders`` by index."""
    return {"url": server.url, "mode": "chat", "interactive": True, "clients": clients,
            "senders": senders, "serverPids": [server.proc.pid], "serverCpu": SERVER_CPU,
            "loadCpu": LOAD_CPU, "deadline": deadline, "connectConcurrency": 50,
            "textBytes": 200, "settle": 1.0}


def spread_senders(rooms: int, per_room: int, n: int) -> list[int]:
    """``n`` senders spread evenly over the rooms (one per room first)."""
    order = [room * per_room + k for k in range(per_room) for room in range(rooms)]
    return order[:n]
