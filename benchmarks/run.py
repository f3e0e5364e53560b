"""Streamzy against a bare python-socketio baseline, side by side, in the same run.

    python benchmarks/run.py --quick                      # sanity run, ~2-3 minutes
    python benchmarks/run.py --fanout --rooms             # the two throughput scenarios
    python benchmarks/run.py --all --json results.json    # everything (long)

Every server runs as a subprocess pinned to CPU 0 (``taskset``); the Node load generator and
this runner run on CPU 1. Streamzy and the baseline are started under the same ASGI server
(Hypercorn with the repository's hypercorn.toml, or Uvicorn with matching limits) and
measured alternately, point by point, so that both see the same machine. Each scenario
prints a table and a summary line with the Streamzy/baseline ratio and its target.
Only 127.0.0.1 is ever targeted, and everything is bounded: every run has a duration, every
wait a timeout, every subprocess is ended when the runner ends.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import fixtures  # noqa: E402

NODE_DIR = ROOT / "benchmarks" / "node"
LOADGEN = NODE_DIR / "loadgen.js"
HOST = "127.0.0.1"
SERVER_CPU = 0
LOAD_CPU = 1
P99_LIMIT_MS = 100.0
APPS = {"streamzy": "streamzy.asgi:app", "baseline": "benchmarks.baseline_server:app"}
TARGETS = {
    "fanout": ("fan-out knee >= 0.95x baseline", 0.95),
    "rooms": ("many-small-rooms knee >= 0.8x baseline", 0.80),
    "logins": ("login storm raises chat p99 < 1.5x", 1.5),
    "idle": ("10,000 idle sockets < 1 GiB RSS", 1024 ** 3),
    "history": ("history p99 < 20 ms at 1,000,000 messages", 20.0),
    "redis": ("two processes over Redis >= 1.6x one process", 1.6),
    "flood": ("a flooding client keeps the others' p99 <= 100 ms", P99_LIMIT_MS),
}


def log(*parts: Any) -> None:
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


# ---- processes ---------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


LOOP = {"name": "uvloop"}  # --loop: the event loop of both servers (Streamzy ships uvloop)


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
                 cpu: int = SERVER_CPU, port: int | None = None) -> Server:
    port = port or free_port()
    logfile = workdir / f"{name}-{kind}-{port}.log"
    cmd = ["taskset", "-c", str(cpu), *server_command(kind, APPS[name], port)]
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
        import select

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


def _cpu_times() -> dict[int, tuple[int, int]]:
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3].isdigit():
            name, *values = line.split()
            v = [int(x) for x in values]
            out[int(name[3:])] = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7], sum(v[:8]))
    return out


def core_load(seconds: float = 1.0) -> dict[int, float]:
    """Busy share of each core over ``seconds`` (our servers are idle when this runs)."""
    a = _cpu_times()
    time.sleep(seconds)
    b = _cpu_times()
    return {cpu: (b[cpu][0] - a[cpu][0]) / max(1, b[cpu][1] - a[cpu][1]) for cpu in b}


def wait_quiet(limit: float, threshold: float = 0.15) -> float:
    """Wait (at most ``limit`` s) until other work leaves our two cores; returns the load seen."""
    deadline = time.monotonic() + limit
    while True:
        load = core_load(1.0)
        worst = max(load.get(SERVER_CPU, 0), load.get(LOAD_CPU, 0))
        if worst <= threshold or time.monotonic() >= deadline:
            return worst
        log(f"cores busy with other work ({100 * worst:.0f}%): waiting")


# ---- results -------------------------------------------------------------------------------

def passes(r: dict[str, Any]) -> bool:
    """The knee criterion: p99 <= 100 ms, nothing lost or duplicated, no errors."""
    e = r.get("errors", {})
    p99 = (r.get("latency_ms") or {}).get("p99")
    return (not r.get("failed") and p99 is not None and p99 <= P99_LIMIT_MS
            and r["lost"] == 0 and r["duplicates"] == 0 and r.get("disconnects", 0) == 0
            and e.get("ackErrors", 0) == 0 and e.get("ackTimeouts", 0) == 0
            and e.get("sendErrors", 0) == 0 and r["sent_rate"] >= 0.95 * r["offered_rate"])


def noisy(r: dict[str, Any]) -> bool:
    """Something else took a real share of the server's or the generator's core."""
    return ((r.get("server_core_foreign") or 0) > 0.10 or (r.get("server_core_steal") or 0) > 0.05
            or (r.get("load_core_foreign") or 0) > 0.30)


def fmt(value: Any, spec: str = ".0f") -> str:
    if value is None:
        return "-"
    return format(value, spec)


CHAT_COLUMNS = ("server", "app", "offered/s", "sent/s", "deliv/s", "p50 ms", "p95 ms", "p99 ms",
                "max ms", "lost", "dup", "err", "srv CPU", "us/deliv", "RSS MB", "gen CPU",
                "noise", "ok")


def chat_row(server: str, app: str, r: dict[str, Any]) -> list[str]:
    lat = r.get("latency_ms") or {}
    e = r.get("errors", {})
    errs = (e.get("ackErrors", 0) + e.get("ackTimeouts", 0) + e.get("sendErrors", 0)
            + r.get("disconnects", 0))
    noise = (f"{(r.get('server_core_foreign') or 0) * 100:.0f}/"
             f"{(r.get('server_core_steal') or 0) * 100:.0f}/"
             f"{(r.get('load_core_foreign') or 0) * 100:.0f}%")
    return [server, app, fmt(r.get("offered_rate"), "g"), fmt(r.get("sent_rate"), ".1f"),
            fmt(r.get("delivered_per_s")), fmt(lat.get("p50"), ".1f"), fmt(lat.get("p95"), ".1f"),
            fmt(lat.get("p99"), ".1f"), fmt(lat.get("max"), ".0f"), str(r.get("lost", "-")),
            str(r.get("duplicates", "-")), str(errs), fmt(r.get("server_cpu"), ".2f"),
            fmt(r.get("server_cpu_us_per_delivery"), ".0f"),
            fmt((r.get("server_rss") or 0) / 2 ** 20, ".0f"), fmt(r.get("loadgen_cpu"), ".2f"),
            noise + ("!" if noisy(r) else ""), "yes" if passes(r) else "no"]


def table(columns: tuple[str, ...] | list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)), *(len(row[i]) for row in rows)) if rows else len(c)
              for i, c in enumerate(columns)]
    line = "| " + " | ".join(str(c).ljust(w) for c, w in zip(columns, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + " |"
            for row in rows]
    return "\n".join([line, sep, *body])


@dataclass
class Report:
    sections: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def add(self, title: str, text: str) -> None:
        block = f"### {title}\n\n{text}\n"
        self.sections.append(block)
        print("\n" + block, flush=True)


# ---- knee search -------------------------------------------------------------------------------

@dataclass
class Knee:
    """Adaptive rate sweep: grow by ``factor`` until a point fails, then bisect."""

    start: float
    factor: float
    tolerance: float
    max_points: int
    max_rate: float
    lo: float | None = None
    hi: float | None = None
    next: float | None = None
    points: int = 0
    retried: set[float] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.next = self.start

    @property
    def done(self) -> bool:
        if self.next is None or self.points >= self.max_points:
            return True
        if self.lo is not None and self.hi is not None:
            return (self.hi - self.lo) / self.lo <= self.tolerance
        return False

    def record(self, rate: float, ok: bool) -> None:
        self.points += 1
        if ok:
            self.lo = rate if self.lo is None else max(self.lo, rate)
            if self.hi is None:
                nxt = rate * self.factor
                self.next = None if nxt > self.max_rate else _round_rate(nxt)
            else:
                self.next = _round_rate((self.lo + self.hi) / 2)
        else:
            self.hi = rate if self.hi is None else min(self.hi, rate)
            if self.lo is None:
                nxt = rate / self.factor
                self.next = None if nxt < 1 else _round_rate(nxt)
            else:
                self.next = _round_rate((self.lo + self.hi) / 2)
        if self.next is not None and self.lo is not None and self.hi is not None \
                and not (self.lo < self.next < self.hi):
            self.next = None


def _round_rate(rate: float) -> float:
    if rate >= 100:
        return float(round(rate / 5) * 5)
    if rate >= 20:
        return float(round(rate))
    return round(rate, 1)


@dataclass
class Context:
    quick: bool
    servers: list[str]
    workdir: Path
    report: Report
    duration: float
    warmup: float
    drain: float
    knees: dict[str, dict[str, float | None]] = field(default_factory=dict)
    wait_quiet: float = 0.0
    rates: list[float] | None = None
    cores: int = 2


@contextmanager
def pair(ctx: Context, kind: str, streamzy_env: dict[str, str], tag: str,
         baseline_env: dict[str, str] | None = None) -> Iterator[dict[str, Server]]:
    servers: dict[str, Server] = {}
    try:
        for name, env in (("streamzy", streamzy_env), ("baseline", baseline_env or {})):
            servers[name] = start_server(name, kind, ctx.workdir / tag, env)
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def chat_config(server: Server, clients: list[dict[str, Any]], senders: list[int],
                deadline: float) -> dict[str, Any]:
    return {"url": server.url, "mode": "chat", "interactive": True, "clients": clients,
            "senders": senders, "serverPids": [server.proc.pid], "serverCpu": SERVER_CPU,
            "loadCpu": LOAD_CPU, "deadline": deadline, "connectConcurrency": 50,
            "textBytes": 200, "settle": 1.0}


def sweep(ctx: Context, scenario: str, title: str, rooms: int, per_room: int,
          n_senders: int, start: float, factor: float, max_rate: float,
          quick_rates: list[float]) -> None:
    rows: list[list[str]] = []
    summary_rows: list[list[str]] = []
    raw: list[dict[str, Any]] = []
    for kind in ctx.servers:
        tag = f"{scenario}-{kind}"
        (ctx.workdir / tag).mkdir(parents=True, exist_ok=True)
        keys = fixtures.Secrets()
        fx = fixtures.chat_fixture(ctx.workdir / tag, keys, rooms=rooms, per_room=per_room)
        senders = _spread_senders(rooms, per_room, n_senders)
        env = fixtures.server_env(fx.db_url, keys, ctx.workdir / tag)
        with pair(ctx, kind, env, tag) as servers:
            gens = {}
            try:
                for name in ("streamzy", "baseline"):
                    gens[name] = LoadGen(chat_config(servers[name], fx.clients, senders, 7200),
                                         ctx.workdir / tag, f"{name}", timeout=300)
                    hello = gens[name].hello
                    gens[name].warm(min(start, 20))
                    log(f"{scenario}/{kind}/{name}: {hello.get('connected')} connected in "
                        f"{hello.get('connectSeconds', 0):.1f} s, join errors "
                        f"{hello.get('join_errors')}")
                fixed = ctx.rates or (quick_rates if ctx.quick else None)
                knees = {name: Knee(start, factor, 0.08, 10, max_rate) for name in gens}
                if fixed:
                    plan: dict[str, list[float]] = {name: list(fixed) for name in gens}
                while True:
                    progressed = False
                    for name in ("streamzy", "baseline"):
                        knee = knees[name]
                        if fixed:
                            if not plan[name]:
                                continue
                            rate = plan[name].pop(0)
                        elif knee.done:
                            continue
                        else:
                            rate = knee.next  # type: ignore[assignment]
                        progressed = True
                        if ctx.wait_quiet:
                            wait_quiet(ctx.wait_quiet)
                        r = gens[name].phase(rate=rate, duration=ctx.duration,
                                             warmup=ctx.warmup, drain=ctx.drain)
                        ok = passes(r)
                        if not ok and noisy(r) and rate not in knee.retried:
                            knee.retried.add(rate)
                            log(f"{name} @ {rate}/s failed on a noisy machine: repeating")
                            rows.append([*chat_row(kind, name, r), "(noisy, repeated)"])
                            wait_quiet(max(ctx.wait_quiet, 30))
                            r = gens[name].phase(rate=rate, duration=ctx.duration,
                                                 warmup=ctx.warmup, drain=ctx.drain)
                            ok = passes(r)
                        knee.record(rate, ok)
                        raw.append({"server": kind, "app": name, **r})
                        rows.append([*chat_row(kind, name, r), ""])
                        lat = r.get("latency_ms") or {}
                        log(f"{scenario}/{kind}/{name} @ {rate}/s: deliv/s "
                            f"{r.get('delivered_per_s', 0):.0f} p99 {fmt(lat.get('p99'), '.1f')} "
                            f"lost {r.get('lost')} cpu {fmt(r.get('server_cpu'), '.2f')} "
                            f"gen {fmt(r.get('loadgen_cpu'), '.2f')} -> "
                            f"{'pass' if ok else 'FAIL'}")
                        if not all(s.alive() for s in servers.values()):
                            raise RuntimeError("a server died; see logs in " + str(ctx.workdir))
                    if not progressed:
                        break
            finally:
                for gen in gens.values():
                    gen.close()
        sk = knees["streamzy"].lo
        bk = knees["baseline"].lo
        ctx.knees.setdefault(scenario, {})[kind] = sk
        ratio = (sk / bk) if sk and bk else None
        per = {name: statistics.median(
            [x["server_cpu_us_per_delivery"] for x in raw
             if x["server"] == kind and x["app"] == name and x.get("server_cpu_us_per_delivery")
             and x.get("server_cpu", 0) > 0.2] or [0]) for name in ("streamzy", "baseline")}
        target = TARGETS[scenario][1]
        summary_rows.append([
            kind, fmt(sk, "g"), fmt(bk, "g"), fmt(ratio, ".2f"),
            fmt(per["streamzy"], ".0f"), fmt(per["baseline"], ".0f"),
            fmt(per["baseline"] / per["streamzy"] if per["streamzy"] else None, ".2f"),
            "n/a (fixed rates: no knee search)" if fixed
            else ("met" if ratio >= target else "MISSED") if ratio is not None else "n/a"])
    report_text = table([*CHAT_COLUMNS, "note"], rows)
    report_text += ("\n\nKnee = highest offered rate with p99 <= 100 ms, zero loss, no errors"
                    + (" (fixed rates: no knee search)" if ctx.quick or ctx.rates else
                       ", found by growing the rate 1.6x until a point fails, then bisecting")
                    + ". noise = other processes' share of core 0 / host steal on core 0 / "
                    "other processes' share of core 1 during the window; ! marks a noisy "
                    "point (a failed noisy point is repeated once).\n\n")
    report_text += table(["server", "Streamzy knee msg/s", "baseline knee msg/s",
                          "ratio", "Streamzy us/deliv", "baseline us/deliv",
                          "CPU-efficiency ratio", f"target: {TARGETS[scenario][0]}"],
                         summary_rows)
    ctx.report.add(title, report_text)
    ctx.report.data[scenario] = raw


def _spread_senders(rooms: int, per_room: int, n: int) -> list[int]:
    """``n`` senders spread evenly over the rooms (one per room first)."""
    order = [room * per_room + k for k in range(per_room) for room in range(rooms)]
    return order[:n]


# ---- scenarios ---------------------------------------------------------------------------------

def scenario_fanout(ctx: Context) -> None:
    sweep(ctx, "fanout", "1. Fan-out: 200 clients in one room, 20 senders", rooms=1,
          per_room=200, n_senders=20, start=10, factor=1.6, max_rate=2000,
          quick_rates=[20])


def scenario_rooms(ctx: Context) -> None:
    rooms = 30 if ctx.quick else 100  # quick: 300 clients, to stay within a few minutes
    sweep(ctx, "rooms", f"2. Many small rooms: {rooms * 10:,} clients in {rooms} rooms of 10, "
          f"{rooms} senders", rooms=rooms, per_room=10, n_senders=rooms, start=50, factor=1.6,
          max_rate=20000, quick_rates=[60])


def scenario_logins(ctx: Context) -> None:
    rows: list[list[str]] = []
    summary: list[list[str]] = []
    raw = []
    for kind in ctx.servers:
        tag = f"logins-{kind}"
        (ctx.workdir / tag).mkdir(parents=True, exist_ok=True)
        keys = fixtures.Secrets()
        log("login storm: hashing 20 passwords at bcrypt cost 12")
        fx = fixtures.chat_fixture(ctx.workdir / tag, keys, rooms=1, per_room=200, logins=20)
        knee = (ctx.knees.get("fanout") or {}).get(kind)
        rate = (ctx.rates[0] if ctx.rates else
                max(5.0, _round_rate(knee / 2)) if knee else 10.0)
        env = fixtures.server_env(fx.db_url, keys, ctx.workdir / tag)
        senders = _spread_senders(1, 200, 20)
        with pair(ctx, kind, env, tag) as servers:
            gens = {}
            try:
                for name in ("streamzy", "baseline"):
                    gens[name] = LoadGen(chat_config(servers[name], fx.clients, senders, 7200),
                                         ctx.workdir / tag, name, timeout=300)
                    gens[name].warm(5)
                reps = 1 if ctx.quick else 3
                p99s: dict[str, list[float]] = {"quiet": [], "storm": [], "baseline": []}
                for _ in range(reps):
                    for label, name, logins in (("quiet", "streamzy", []),
                                                ("storm", "streamzy", fx.logins),
                                                ("baseline", "baseline", [])):
                        if ctx.wait_quiet:
                            wait_quiet(ctx.wait_quiet)
                        r = gens[name].phase(rate=rate, duration=ctx.duration, warmup=ctx.warmup,
                                             drain=ctx.drain, logins=logins)
                        raw.append({"server": kind, "app": name, "storm": bool(logins), **r})
                        p99 = (r.get("latency_ms") or {}).get("p99")
                        if p99 is not None:
                            p99s[label].append(p99)
                        note = (f"{r.get('logins_ok', 0)} logins ok, "
                                f"{r.get('logins_failed', 0)} failed, login p50 "
                                f"{fmt((r.get('login_latency_ms') or {}).get('p50'), '.0f')} ms"
                                if logins else "")
                        rows.append([*chat_row(kind, name + (" +20 logins" if logins else ""),
                                                r), note])
                        log(f"logins/{kind}/{label} @ {rate}/s: p99 {fmt(p99, '.1f')} {note}")
            finally:
                for gen in gens.values():
                    gen.close()
        quiet = statistics.median(p99s["quiet"]) if p99s["quiet"] else None
        storm = statistics.median(p99s["storm"]) if p99s["storm"] else None
        ratio = storm / quiet if quiet and storm else None
        summary.append([kind, fmt(rate, "g"), fmt(quiet, ".1f"), fmt(storm, ".1f"),
                        fmt(ratio, ".2f"),
                        ("met" if ratio < 1.5 else "MISSED") if ratio else "n/a"])
    text = table([*CHAT_COLUMNS, "note"], rows)
    text += ("\n\nChat at half of this run's Streamzy fan-out knee (10 msg/s when unknown); "
             "20 clients log in through the real form (GET /login + POST /login, bcrypt "
             "cost 12) in a loop for the whole window.\n\n")
    text += table(["server", "rate msg/s", "p99 quiet ms", "p99 storm ms", "ratio",
                   f"target: {TARGETS['logins'][0]}"], summary)
    ctx.report.add("3. Login storm: chat p99 with and without 20 concurrent logins", text)
    ctx.report.data["logins"] = raw


def scenario_idle(ctx: Context) -> None:
    n = 500 if ctx.quick else 10_000
    rows: list[list[str]] = []
    raw = []
    for kind in ctx.servers:
        tag = f"idle-{kind}"
        (ctx.workdir / tag).mkdir(parents=True, exist_ok=True)
        keys = fixtures.Secrets()
        fx = fixtures.chat_fixture(ctx.workdir / tag, keys, rooms=n // 10, per_room=10)
        env = fixtures.server_env(fx.db_url, keys, ctx.workdir / tag)
        with pair(ctx, kind, env, tag) as servers:
            for name in ("streamzy", "baseline"):
                server = servers[name]
                cfg = {"url": server.url, "mode": "idle", "clients": fx.clients,
                       "serverPids": [server.proc.pid], "deadline": 900,
                       "connectConcurrency": 100, "hold": 3 if ctx.quick else 10,
                       "settle": 1.0}
                t0 = time.monotonic()
                r = run_loadgen_once(cfg, ctx.workdir / tag, f"idle-{name}", timeout=950)
                raw.append({"server": kind, "app": name, **r})
                before, after = r.get("server_rss_before", 0), r.get("server_rss", 0)
                alive = r.get("alive_after_hold", 0)
                per = (after - before) / alive if alive else None
                rows.append([kind, name, str(n), str(r.get("connected")), str(alive),
                             fmt(r.get("connectSeconds"), ".1f"), fmt(before / 2**20, ".0f"),
                             fmt(after / 2**20, ".0f"), fmt(per / 1024 if per else None, ".1f"),
                             fmt(after * 10_000 / alive / 2**20 if alive else None, ".0f"),
                             ("met" if after < TARGETS["idle"][1] * alive / 10_000 else "MISSED")
                             if name == "streamzy" and alive else ""])
                log(f"idle/{kind}/{name}: {alive} alive, RSS {after / 2**20:.0f} MB "
                    f"({time.monotonic() - t0:.0f} s)")
                time.sleep(2)
    text = table(["server", "app", "sockets", "connected", "alive after hold", "connect s",
                  "RSS before MB", "RSS after MB", "KB per socket", "RSS at 10,000 MB",
                  f"target: {TARGETS['idle'][0]}"], rows)
    text += ("\n\nEach socket is signed in and has joined one room of 10. RSS is the server "
             "process tree (Hypercorn's master included) after the sockets have been idle "
             "for the hold time.")
    ctx.report.add(f"4. Idle capacity: {n:,} connected sockets", text)
    ctx.report.data["idle"] = raw


def scenario_history(ctx: Context) -> None:
    count = 100_000 if ctx.quick else 1_000_000
    pages = 50 if ctx.quick else 300
    tag = "history"
    (ctx.workdir / tag).mkdir(parents=True, exist_ok=True)
    keys = fixtures.Secrets()
    t0 = time.monotonic()
    fx = fixtures.history_fixture(ctx.workdir / tag, keys, count)
    log(f"history: {count:,} messages stored in {time.monotonic() - t0:.0f} s")
    env = fixtures.server_env(fx.db_url, keys, ctx.workdir / tag)
    rows = []
    raw = []
    for kind in ctx.servers:
        server = start_server("streamzy", kind, ctx.workdir / tag, env)
        try:
            cfg = {"url": server.url, "mode": "history", "clients": fx.clients,
                   "serverPids": [server.proc.pid], "deadline": 600, "settle": 0.5,
                   "history": {"room": fx.rooms[0], "count": pages, "limit": 100,
                               "maxSeq": count, "warmup": 5}}
            r = run_loadgen_once(cfg, ctx.workdir / tag, f"history-{kind}", timeout=650)
        finally:
            server.stop()
        raw.append({"server": kind, **r})
        h = r.get("history_ms") or {}
        rows.append([kind, f"{count:,}", str(h.get("n")), fmt(r.get("messages_per_page"), ".0f"),
                     fmt(h.get("p50"), ".1f"), fmt(h.get("p95"), ".1f"), fmt(h.get("p99"), ".1f"),
                     fmt(h.get("max"), ".1f"), str(r.get("history_errors")),
                     ("met" if h.get("p99") is not None and h["p99"] < 20 else "MISSED")])
        log(f"history/{kind}: p50 {fmt(h.get('p50'), '.1f')} p99 {fmt(h.get('p99'), '.1f')} ms")
    text = table(["server", "stored messages", "pages", "messages/page", "p50 ms", "p95 ms",
                  "p99 ms", "max ms", "errors", f"target: {TARGETS['history'][0]}"], rows)
    text += ("\n\nOne signed-in client asks for 100-message pages at random positions "
             "(`history {room, before_seq, limit: 100}`), one at a time; time from emit to ack. "
             "The baseline stores nothing, so there is no baseline row.")
    ctx.report.add(f"5. History: 100-message pages with {count:,} stored messages", text)
    ctx.report.data["history"] = raw


def scenario_flood(ctx: Context) -> None:
    """Others' latency while one client floods, with Streamzy's real message limits."""
    rows: list[list[str]] = []
    summary: list[list[str]] = []
    raw = []
    n_senders = 60  # at 20 msg/s each sends 20/min: inside the default 30/min limit
    for kind in ctx.servers:
        tag = f"flood-{kind}"
        (ctx.workdir / tag).mkdir(parents=True, exist_ok=True)
        keys = fixtures.Secrets()
        fx = fixtures.chat_fixture(ctx.workdir / tag, keys, rooms=1, per_room=201)
        flooder = len(fx.clients) - 1
        fx.clients[flooder]["untracked"] = True
        knee = (ctx.knees.get("fanout") or {}).get(kind)
        rate = max(10.0, min(20.0, _round_rate(knee / 2))) if knee else 20.0
        # The limits a deployment runs with (the other scenarios raise them out of the way).
        defaults = {f"STREAMZY_{name.upper()}": str(info.default)
                    for name, info in fixtures.Settings.model_fields.items()
                    if name in ("rate_messages", "rate_socket_events", "flood_disconnect_after")}
        env = {**fixtures.server_env(fx.db_url, keys, ctx.workdir / tag), **defaults}
        senders = _spread_senders(1, 201, n_senders)
        server = start_server("streamzy", kind, ctx.workdir / tag, env)
        p99s: dict[str, list[float]] = {"quiet": [], "flood": []}
        try:
            # A fresh set of connections per repetition: the flooder is disconnected in each.
            for rep_no in range(1 if ctx.quick else 3):
                gen = LoadGen(chat_config(server, fx.clients, senders, 3600), ctx.workdir / tag,
                              f"streamzy-{rep_no}", timeout=300)
                try:
                    gen.warm(5)
                    for label in ("quiet", "flood"):
                        if ctx.wait_quiet:
                            wait_quiet(ctx.wait_quiet)
                        phase: dict[str, Any] = {"rate": rate, "duration": ctx.duration,
                                                 "warmup": ctx.warmup, "drain": ctx.drain}
                        if label == "flood":
                            phase["flood"] = {"client": flooder, "rate": 200}
                        r = gen.phase(**phase)
                        raw.append({"server": kind, "phase": label, **r})
                        p99 = (r.get("latency_ms") or {}).get("p99")
                        if p99 is not None:
                            p99s[label].append(p99)
                        f = r.get("flood") or {}
                        note = (f"flooder: {f.get('sent')} sent, acks {f.get('acks')}, "
                                f"disconnected after {f.get('disconnectedAfter')} sends, "
                                f"{f.get('delivered')} of its messages reached others"
                                if f else "")
                        rows.append([*chat_row(kind, "streamzy" + (" +flood" if f else ""), r),
                                     note])
                        log(f"flood/{kind}/{label} @ {rate}/s: p99 {fmt(p99, '.1f')} {note}")
                finally:
                    gen.close()
        finally:
            server.stop()
        quiet = statistics.median(p99s["quiet"]) if p99s["quiet"] else None
        flooded = max(p99s["flood"]) if p99s["flood"] else None
        summary.append([kind, fmt(rate, "g"), fmt(quiet, ".1f"), fmt(flooded, ".1f"),
                        ("met" if flooded <= P99_LIMIT_MS else "MISSED")
                        if flooded is not None else "n/a"])
    text = table([*CHAT_COLUMNS, "note"], rows)
    text += (f"\n\n200 clients in one room, {n_senders} of them sending (inside the default "
             "30 messages/min each), with Streamzy's default limits (30 messages/min, "
             "300 events/min, disconnect after 20 refusals). In the flood phase a 201st "
             "member sends 200 msg/s; its own receipts are not counted.\n\n")
    text += table(["server", "rate msg/s", "others' p99 quiet ms", "others' p99 during flood ms",
                   f"target: {TARGETS['flood'][0]}"], summary)
    ctx.report.add("7. Flood: the others' latency while one client floods", text)
    ctx.report.data["flood"] = raw


def _redis_server(workdir: Path, cpu: int) -> tuple[subprocess.Popen[bytes], str]:
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


def scenario_redis(ctx: Context, force: bool) -> None:
    cores = ctx.cores
    if cores < 4 and not force:
        ctx.report.add("6. Two processes over Redis", (
            f"Skipped: this machine has {cores} cores. Two server processes, Redis and the load "
            "generator need 4 (the servers on cores 0 and 1, Redis on 2, the generator on 3); "
            "on 2 cores both processes would share the generator's core and the figure would "
            "say nothing about scaling. Run with `--redis --force-redis` to smoke-test it."))
        return
    server_cpus = [0, 1] if cores >= 4 else [0, 0]
    rows = []
    raw = []
    rate = 10 if ctx.quick else None
    for kind in ctx.servers:
        tag = f"redis-{kind}"
        work = ctx.workdir / tag
        work.mkdir(parents=True, exist_ok=True)
        redis_proc, redis_url = _redis_server(work, 2 if cores >= 4 else LOAD_CPU)
        try:
            keys = fixtures.Secrets()
            fx = fixtures.chat_fixture(work, keys, rooms=1, per_room=200)
            senders = _spread_senders(1, 200, 20)
            for app in ("streamzy", "baseline"):
                env = (fixtures.server_env(fx.db_url, keys, work, redis_url) if app == "streamzy"
                       else {"BASELINE_REDIS_URL": redis_url})
                for procs in (1, 2):
                    servers = [start_server(app, kind, work, env, cpu=server_cpus[i])
                               for i in range(procs)]
                    try:
                        clients = [{**c, "url": servers[i % procs].url}
                                   for i, c in enumerate(fx.clients)]
                        cfg = {**chat_config(servers[0], clients, senders, 3600),
                               "serverPids": [s.proc.pid for s in servers],
                               "serverCpu": server_cpus[0]}
                        gen = LoadGen(cfg, work, f"{app}-{procs}", timeout=300)
                        gen.warm(5)
                        try:
                            knee = Knee(rate or 10, 1.6, 1.0 if ctx.quick else 0.1,
                                        1 if ctx.quick else 8, 5000)
                            best = None
                            while not knee.done:
                                assert knee.next is not None
                                r = gen.phase(rate=knee.next, duration=ctx.duration,
                                              warmup=ctx.warmup, drain=ctx.drain)
                                ok = passes(r)
                                knee.record(r["offered_rate"], ok)
                                raw.append({"server": kind, "app": app, "processes": procs, **r})
                                rows.append([*chat_row(kind, f"{app} x{procs}", r), ""])
                                if ok and (best is None or r["delivered_per_s"] > best):
                                    best = r["delivered_per_s"]
                            ctx.knees.setdefault("redis", {})[f"{kind}/{app}/{procs}"] = best
                        finally:
                            gen.close()
                    finally:
                        for s in servers:
                            s.stop()
        finally:
            redis_proc.terminate()
            redis_proc.wait(10)
    text = table([*CHAT_COLUMNS, "note"], rows)
    summary = []
    for kind in ctx.servers:
        for app in ("streamzy", "baseline"):
            one = ctx.knees.get("redis", {}).get(f"{kind}/{app}/1")
            two = ctx.knees.get("redis", {}).get(f"{kind}/{app}/2")
            ratio = two / one if one and two else None
            summary.append([kind, app, fmt(one, ".0f"), fmt(two, ".0f"), fmt(ratio, ".2f"),
                            ("met" if ratio >= 1.6 else "MISSED") if ratio and app == "streamzy"
                            else ""])
    text += "\n\n" + table(["server", "app", "1 process deliv/s", "2 processes deliv/s",
                            "ratio", f"target: {TARGETS['redis'][0]}"], summary)
    if cores < 4:
        text += "\n\nSMOKE TEST ONLY: fewer than 4 cores, both processes shared core 0."
    ctx.report.add("6. Two processes over Redis: deliveries/s at the knee", text)
    ctx.report.data["redis"] = raw


# ---- main ----------------------------------------------------------------------------------------

def versions() -> str:
    import importlib.metadata as md

    def v(name: str) -> str:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return "-"
    node = subprocess.run(["node", "--version"], capture_output=True, text=True,
                          check=False).stdout.strip()
    ws = json.loads((NODE_DIR / "node_modules" / "ws" / "package.json").read_text())["version"] \
        if (NODE_DIR / "node_modules" / "ws").exists() else "-"
    return (f"Python {platform.python_version()}, Hypercorn {v('hypercorn')}, Uvicorn "
            f"{v('uvicorn')} (h11 {v('h11')}, wsproto {v('wsproto')}, websockets "
            f"{v('websockets')}, uvloop {v('uvloop')}), python-socketio {v('python-socketio')}, "
            f"python-engineio {v('python-engineio')}, SQLAlchemy {v('sqlalchemy')}, "
            f"Node {node}, ws {ws}; {os.cpu_count()} CPUs, "
            f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="sanity run: every scenario, short and small (~2-3 min)")
    parser.add_argument("--all", action="store_true", help="every scenario, full size")
    for name, help_text in (("fanout", "1. fan-out knee, 200 clients in one room"),
                            ("rooms", "2. many small rooms, 1,000 clients in 100 rooms"),
                            ("logins", "3. login storm"),
                            ("idle", "4. 10,000 idle sockets"),
                            ("history", "5. history page at 1,000,000 messages"),
                            ("redis", "6. two processes over Redis (needs 4 cores)"),
                            ("flood", "7. one client flooding, with the real limits")):
        parser.add_argument(f"--{name}", action="store_true", help=help_text)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop",
                        help="event loop of both servers (Hypercorn --worker-class, Uvicorn "
                             "--loop); uvloop is what hypercorn.toml ships")
    parser.add_argument("--force-redis", action="store_true",
                        help="run scenario 6 even with fewer than 4 cores (smoke test)")
    parser.add_argument("--servers", default="hypercorn,uvicorn",
                        help="comma list of hypercorn, uvicorn (default both)")
    parser.add_argument("--duration", type=float, help="measured seconds per point")
    parser.add_argument("--rates", help="comma list of fixed rates (msg/s) instead of the "
                                        "knee search, for --fanout / --rooms; the first is "
                                        "the chat rate of --logins")
    parser.add_argument("--json", type=Path, help="write raw results here")
    parser.add_argument("--markdown", type=Path, help="write the tables here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                        help="before each point wait up to S s for other work to leave the "
                             "cores (shared machines)")
    parser.add_argument("--streamzy-app", default=APPS["streamzy"],
                        help="ASGI app measured as Streamzy (e.g. an experiment module)")
    parser.add_argument("--baseline-app", default=APPS["baseline"],
                        help="ASGI app measured as the baseline")
    args = parser.parse_args(argv)
    APPS["streamzy"], APPS["baseline"] = args.streamzy_app, args.baseline_app
    LOOP["name"] = args.loop

    every = ["fanout", "rooms", "logins", "idle", "history", "redis", "flood"]
    chosen = [n for n in every if getattr(args, n)]
    if args.all or (args.quick and not chosen):
        chosen = every
    if not chosen:
        parser.error("choose --quick, --all or one or more scenarios")
    if not (NODE_DIR / "node_modules" / "ws").exists():
        log("installing the load generator: npm ci in benchmarks/node")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True)
    cores = len(os.sched_getaffinity(0))
    if cores < 2:
        parser.error("needs 2 CPUs: the server on CPU 0, the load on CPU 1")
    # the runner shares the generator's core; raise the file limit for 10,000 sockets
    os.sched_setaffinity(0, {LOAD_CPU})
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < 25_000 and ("idle" in chosen):
        log(f"file limit {hard}: enough for 10,000 sockets per process")

    workdir = Path(tempfile.mkdtemp(prefix="streamzy-bench-"))
    ctx = Context(quick=args.quick, servers=[s.strip() for s in args.servers.split(",") if s],
                  workdir=workdir, report=Report(),
                  duration=args.duration or (2.0 if args.quick else 10.0),
                  warmup=0.5 if args.quick else 2.0, drain=3.0 if args.quick else 5.0,
                  wait_quiet=args.wait_quiet,
                  rates=[float(r) for r in args.rates.split(",")] if args.rates else None,
                  cores=cores)
    started = time.monotonic()
    commit = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                            capture_output=True, text=True, check=False).stdout.strip()
    header = (f"Streamzy benchmark ({commit or 'no git'}), {time.strftime('%Y-%m-%d %H:%M')}, "
              f"{'quick' if args.quick else 'full'} mode, {ctx.duration:g} s per point, "
              f"{LOOP['name']} event loop. "
              f"{versions()}.")
    if APPS != {"streamzy": "streamzy.asgi:app", "baseline": "benchmarks.baseline_server:app"}:
        header += f" Apps: Streamzy = {APPS['streamzy']}, baseline = {APPS['baseline']}."
    print(header, flush=True)
    log(f"work directory {workdir}")
    scenarios: dict[str, Callable[[], None]] = {
        "fanout": lambda: scenario_fanout(ctx), "rooms": lambda: scenario_rooms(ctx),
        "logins": lambda: scenario_logins(ctx), "idle": lambda: scenario_idle(ctx),
        "history": lambda: scenario_history(ctx),
        "redis": lambda: scenario_redis(ctx, args.force_redis),
        "flood": lambda: scenario_flood(ctx)}
    failed = []
    try:
        for name in chosen:
            t0 = time.monotonic()
            try:
                scenarios[name]()
            except Exception as exc:
                failed.append(name)
                log(f"scenario {name} failed: {exc!r}")
                ctx.report.add(f"{name}: FAILED", f"`{exc!r}` (logs in {workdir})")
            log(f"scenario {name} took {time.monotonic() - t0:.0f} s")
    finally:
        elapsed = time.monotonic() - started
        print(f"\nTotal time {elapsed:.0f} s.", flush=True)
        if args.json:
            args.json.write_text(json.dumps({"header": header, "results": ctx.report.data,
                                             "knees": ctx.knees}, indent=1))
        if args.markdown:
            args.markdown.write_text(header + "\n\n" + "\n".join(ctx.report.sections))
        if args.keep or failed:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
