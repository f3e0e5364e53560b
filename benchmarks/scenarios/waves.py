"""Scenario 8, waves of sockets: is memory returned after sockets come and go?

Each wave connects N signed-in sockets (own accounts, rooms of 10), each joins its room and
sends one message, then all of them close (a clean websocket close, like a closing tab);
the last wave leaves 3 connected, then the servers idle for the pause. It runs twice: with
plain websocket frames, and with permessage-deflate, which every browser offers and
Hypercorn accepts (one zlib compressor and decompressor per socket). Streamzy and the bare
python-socketio baseline run under the same ASGI server and take their waves in turn.

Both servers run wrapped in ``benchmarks/experiments/memory_probe.py``, which answers
``/__probe/*`` on the server's own loop: after each wave it reports every per-connection
structure (python-socketio, python-engineio, Streamzy's namespace, rate limiter, audit
windows), glibc's and pymalloc's heap figures and, with ``PROBE_TRACEMALLOC=FRAMES`` in the
environment, tracemalloc's growth by file:line; at the end it runs ``malloc_trim(0)``:
what that gives back was free heap glibc kept (fragmentation), not live objects.

Knobs for diagnosis (environment): WAVES_SOCKETS / WAVES_COUNT / WAVES_PAUSE (size),
WAVES_DEFLATE=0|1 (one compression only), WAVES_TRIM=1 (malloc_trim after every wave),
WAVES_SHAPE=one-account (the audit's: every socket one account's, all in one room),
WAVES_AUTOTRIM=N (default 100; 0 leaves it out): a third server, Streamzy with the policy
"malloc_trim(0) once N sockets have closed since the last trim", in the same run.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from benchmarks.harness.config import APPS, log
from benchmarks.harness.context import ChatSetup, Context, chat_setup
from benchmarks.harness.loadgen import LoadGen
from benchmarks.harness.processes import Server, start_server
from benchmarks.harness.results import fmt, table

PROBE = "benchmarks.experiments.memory_probe:app"
TRIMMED = "streamzy+trim"  # Streamzy with the probe's malloc_trim policy (PROBE_AUTOTRIM)
KEEP = 3  # sockets left connected after the last wave (the audit's figure)
# After the pause, RSS may exceed what the first wave left behind by this much: more
# means memory grows wave after wave (a leak, or fragmentation that keeps growing).
TARGET = ("RSS after the pause <= after wave 1 + 10 %", 1.10)
NOTE = ("RSS of the app's process (Hypercorn's worker) from /proc. `KB/socket` = (RSS with "
        "the wave connected - RSS before wave 1) / sockets. `left` = per-connection "
        "entries still held 3 s after the wave closed (python-socketio, engine.io, "
        "Streamzy's namespace, limiter, audit windows; the 3 kept sockets excluded), from "
        "the probe. `cycle garbage` = what gc.collect() found unreachable 3 s after the wave "
        "left (closed connections in reference cycles: Hypercorn's protocol objects, "
        "wsproto's zlib contexts, engine.io's queues) and the C heap it held; RSS after is "
        "read after that collect. `heap free` = glibc heap free inside the process "
        "(mallinfo2) then. `after malloc_trim` = the same process after gc.collect() and glibc's "
        "malloc_trim(0): what it gives back was free heap glibc kept, not live objects. "
        f"`{TRIMMED}` = Streamzy with malloc_trim(0) once 100 sockets have closed since the "
        "last trim (checked every 2 s; `automatic trims` = how many, and the longest).")
# Entries that are per connection; a live socket holds up to 4 of any (python-socketio's
# rooms None, its sid, u:ID and r:ID).
PER_CONNECTION = ("eio.sockets", "sio.environ", "sio._binary_packet", "manager.room_members",
                  "manager.callbacks", "manager.pending_connect", "manager.pending_disconnect",
                  "ns.connections", "ns.freshness", "ns.strikes", "ns.order", "ns.registry",
                  "ns.rooms", "ns.pending", "ns.budgets", "limiter.socket_keys",
                  "baseline._names", "connections.tasks", "connections.dropping")


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def probe(server: Server, what: str, label: str = "") -> dict[str, Any]:
    url = f"{server.url}/__probe/{what}" + (f"?label={label}" if label else "")
    with urllib.request.urlopen(url, timeout=120) as response:  # noqa: S310 - 127.0.0.1
        return json.loads(response.read())


def left(report: dict[str, Any], kept: int, start: dict[str, Any]) -> dict[str, int]:
    """Per-connection entries beyond what ``kept`` live sockets account for and what the
    server held before the first wave (the harness's readiness check leaves one Engine.IO
    polling session, which expires after ping interval + timeout)."""
    return {key: value for key in PER_CONNECTION
            if isinstance(value := report.get(key), int)
            and value > kept * 4 + (start.get(key) or 0)}


@dataclass
class Size:
    sockets: int
    waves: int
    pause: float
    compressions: tuple[str, ...]
    shape: str = "rooms"
    trim_each: bool = False
    autotrim: int = 100
    policy: str = "count"  # count: trim after N closed sockets; gc: after a big full GC

    @property
    def apps(self) -> tuple[str, ...]:
        return ("streamzy", TRIMMED, "baseline") if self.autotrim else ("streamzy", "baseline")


def size(ctx: Context) -> Size:
    env = os.environ
    default = (200, 2, 5.0) if ctx.quick else (1000, 4, 50.0)
    deflate = env.get("WAVES_DEFLATE")
    return Size(int(env.get("WAVES_SOCKETS", default[0])), int(env.get("WAVES_COUNT", default[1])),
                float(env.get("WAVES_PAUSE", default[2])),
                ("off", "deflate") if deflate is None else
                ("deflate",) if deflate == "1" else ("off",),
                env.get("WAVES_SHAPE", "rooms"), env.get("WAVES_TRIM") == "1",
                int(env.get("WAVES_AUTOTRIM", "100")), env.get("WAVES_TRIM_POLICY", "count"))


@dataclass
class Tally:
    rows: list[list[str]] = field(default_factory=list)
    summary: list[list[str]] = field(default_factory=list)
    raw: list[dict[str, Any]] = field(default_factory=list)


def _setup(ctx: Context, tag: str, sz: Size) -> tuple[ChatSetup, list[dict[str, Any]]]:
    if sz.shape == "one-account":
        setup = chat_setup(ctx, f"{tag}-one-account", rooms=1, per_room=1)
        return setup, setup.fx.clients * sz.sockets
    setup = chat_setup(ctx, tag, rooms=max(1, sz.sockets // 10), per_room=10)
    return setup, setup.fx.clients


def _env(setup: ChatSetup, sz: Size, target: str, autotrim: int = 0) -> dict[str, str]:
    policy = ({"PROBE_TRIM_AFTER_GC": str(autotrim)} if sz.policy == "gc"
              else {"PROBE_AUTOTRIM": str(autotrim)})
    return {**setup.env, "PROBE_TARGET": target, **policy,
            # one address opens them all, 20 at a time; the audit's shape puts every
            # socket on one account
            "STREAMZY_SOCKET_UNAUTHENTICATED_PER_ADDRESS": "1000",
            "STREAMZY_SOCKETS_PER_USER": str(sz.sockets + 100)}


def _one(ctx: Context, kind: str, compression: str, sz: Size,
         setups: dict[str, tuple[ChatSetup, list[dict[str, Any]]]], out: Tally) -> None:
    """Every app under ``kind``, fresh processes, every wave in turn, then the pause."""
    work = setups["streamzy"][0].work / compression
    work.mkdir(exist_ok=True)
    envs = {"streamzy": _env(setups["streamzy"][0], sz, APPS["streamzy"]),
            "baseline": {"PROBE_TARGET": APPS["baseline"]}}
    if TRIMMED in sz.apps:  # its own database: one Streamzy process per database
        envs[TRIMMED] = _env(setups[TRIMMED][0], sz, APPS["streamzy"], sz.autotrim)
    n = sz.sockets
    servers: dict[str, Server] = {}
    gens: dict[str, LoadGen] = {}
    base: dict[str, int] = {}
    first_after: dict[str, int] = {}
    per_socket: dict[str, float] = {}
    start: dict[str, dict[str, Any]] = {}
    try:
        for name in sz.apps:
            servers[name] = start_server(name, kind, work, envs[name], app=PROBE)
        for name in sz.apps:
            server = servers[name]
            gens[name] = LoadGen({
                "url": server.url, "mode": "chat", "interactive": True, "clients": [],
                "waveClients": setups[name][1], "serverPids": [server.proc.pid], "deadline": 3600,
                "connectConcurrency": 20, "settle": 0, "deflate": compression == "deflate"},
                work, f"waves-{name}", timeout=60)
            start[name] = probe(server, "report", "start")
            base[name] = rss(server.worker_pid())
        for wave in range(1, sz.waves + 1):
            kept = KEEP if wave == sz.waves else 0
            for name in sz.apps:
                server, gen = servers[name], gens[name]
                pid = server.worker_pid()
                c = gen.phase(op="connect", count=n, duration=600, drain=0)
                # in one room of n, n messages would be n * n deliveries: 10 senders there
                s = gen.phase(op="send", duration=300, drain=0,
                              **({"count": 10} if sz.shape == "one-account" else {}))
                connected = rss(pid)
                per_socket.setdefault(name, (connected - base[name]) / n / 1024)
                gen.phase(op="disconnect", keep=kept, duration=60, drain=0)
                time.sleep(3)  # the closes are processed (and a 2 s trim check has run)
                trim = probe(server, "trim") if sz.trim_each else None
                rep = probe(server, "report", f"{name}-wave{wave}")
                after = rss(pid)
                first_after.setdefault(name, after)
                still = left(rep, kept, start[name])
                out.raw.append({"server": kind, "compression": compression, "app": name,
                                "wave": wave, "connect": c, "send": s, "probe": rep,
                                "rss_connected": connected, "rss_after": after, "trim": trim})
                out.rows.append([
                    kind, compression, name, str(wave), str(c.get("live")),
                    fmt(c.get("seconds"), ".1f"), str(s.get("acked")), fmt(connected / 2**20),
                    fmt((connected - base[name]) / n / 1024, ".0f"), _garbage(rep),
                    fmt(after / 2**20), fmt(rep.get("heap_free", 0) / 2**20),
                    ", ".join(f"{k}={v}" for k, v in still.items()) or "none"])
                log(f"waves/{kind}/{compression}/{name} wave {wave}: {c.get('live')} "
                    f"connected, RSS {connected / 2**20:.0f} MB connected, "
                    f"{after / 2**20:.0f} MB after; left {still or 'none'}")
        time.sleep(sz.pause)
        for name in sz.apps:
            server = servers[name]
            pid = server.worker_pid()
            rep = probe(server, "report", f"{name}-pause")
            paused = rss(pid)
            trim = probe(server, "trim")
            trimmed = rss(pid)
            out.raw.append({"server": kind, "compression": compression, "app": name,
                            "wave": "pause", "probe": rep, "rss_after": paused, "trim": trim,
                            "autotrim_ms": rep.get("autotrim_ms"),
                            "rss_trimmed": trimmed})
            out.rows.append([kind, compression, name, f"+{sz.pause:g} s", str(KEEP), "-", "-",
                             "-", "-", _garbage(rep), fmt(paused / 2**20),
                             fmt(rep.get("heap_free", 0) / 2**20),
                             ", ".join(f"{k}={v}" for k, v in left(rep, KEEP, start[name]).items())
                             or "none"])
            ok = paused <= first_after[name] * TARGET[1]
            out.summary.append([
                kind, compression, name, fmt(per_socket[name], ".0f"), fmt(base[name] / 2**20),
                fmt(first_after[name] / 2**20), fmt(paused / 2**20),
                fmt((paused - first_after[name]) / 2**20, "+.0f"), fmt(trimmed / 2**20),
                fmt(trim.get("trim_ms"), ".0f"), _autotrims(rep.get("autotrim_ms")),
                ("met" if ok else "MISSED") if name != "baseline" else ""])
        (work / "probe.json").write_text(json.dumps(
            [r for r in out.raw if r["server"] == kind and r["compression"] == compression],
            indent=1))
    finally:
        for gen in gens.values():
            gen.close()
        for server in servers.values():
            server.stop()


def _garbage(rep: dict[str, Any]) -> str:
    """Objects in reference cycles when the wave had left, and the C heap they held."""
    held = rep.get("heap_in_use_before_gc", 0) - rep.get("heap_in_use", 0)
    return f"{rep.get('gc_unreachable', 0):,} / {max(0, held) / 2**20:.0f}"


def _autotrims(ms: list[float] | None) -> str:
    if not ms:
        return "-"
    return f"{len(ms)}, max {max(ms):.0f} ms"


def run(ctx: Context) -> None:
    sz = size(ctx)
    out = Tally()
    for kind in ctx.servers:
        setups = {"streamzy": _setup(ctx, f"waves-{kind}", sz)}
        setups["baseline"] = setups["streamzy"]
        if TRIMMED in sz.apps:
            setups[TRIMMED] = _setup(ctx, f"waves-{kind}-trim", sz)
        for compression in sz.compressions:
            _one(ctx, kind, compression, sz, setups, out)
    text = table(["server", "ws compression", "app", "wave", "connected", "connect s",
                  "acked", "RSS connected MB", "KB/socket", "cycle garbage: objects / heap MB",
                  "RSS after MB", "heap free MB",
                  "left"], out.rows)
    text += "\n\n" + NOTE + "\n\n" + table(
        ["server", "ws compression", "app", "KB/socket (wave 1)", "RSS at start MB",
         "after wave 1 MB", f"after {sz.waves} waves + pause MB", "growth after wave 1 MB",
         "after malloc_trim MB", "trim ms", "automatic trims", f"target: {TARGET[0]}"],
        out.summary)
    shape = ", every socket one account's in one room" if sz.shape == "one-account" else ""
    ctx.report.add(f"8. Waves: {sz.waves} waves of {sz.sockets:,} sockets{shape}, then "
                   f"{sz.pause:g} s with {KEEP} left", text)
    ctx.report.data["waves"] = out.raw
