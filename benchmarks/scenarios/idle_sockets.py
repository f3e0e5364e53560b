"""Scenario 4, idle capacity: RSS of the server with 10,000 signed-in sockets, each joined to
one room of 10, against the baseline's; what a deployment needs in memory per user."""

from __future__ import annotations

import time
from typing import Any

from benchmarks.harness.config import log
from benchmarks.harness.context import Context, chat_setup, pair
from benchmarks.harness.loadgen import run_loadgen_once
from benchmarks.harness.results import fmt, table

TARGET = ("10,000 idle sockets < 1 GiB RSS", 1024 ** 3)
NOTE = ("Each socket is signed in and has joined one room of 10. RSS is the server "
        "process tree (Hypercorn's master included) after the sockets have been idle "
        "for the hold time.")


def _row(kind: str, name: str, n: int, r: dict[str, Any]) -> list[str]:
    before, after = r.get("server_rss_before", 0), r.get("server_rss", 0)
    alive = r.get("alive_after_hold", 0)
    per = (after - before) / alive if alive else None
    return [kind, name, str(n), str(r.get("connected")), str(alive),
            fmt(r.get("connectSeconds"), ".1f"), fmt(before / 2**20, ".0f"),
            fmt(after / 2**20, ".0f"), fmt(per / 1024 if per else None, ".1f"),
            fmt(after * 10_000 / alive / 2**20 if alive else None, ".0f"),
            ("met" if after < TARGET[1] * alive / 10_000 else "MISSED")
            if name == "streamzy" and alive else ""]


def run(ctx: Context) -> None:
    n = 500 if ctx.quick else 10_000
    rows: list[list[str]] = []
    raw: list[dict[str, Any]] = []
    for kind in ctx.servers:
        setup = chat_setup(ctx, f"idle-{kind}", rooms=n // 10, per_room=10)
        with pair(ctx, kind, setup.env, setup.tag) as servers:
            for name in ("streamzy", "baseline"):
                server = servers[name]
                cfg = {"url": server.url, "mode": "idle", "clients": setup.fx.clients,
                       "serverPids": [server.proc.pid], "deadline": 900,
                       "connectConcurrency": 100, "hold": 3 if ctx.quick else 10,
                       "settle": 1.0}
                t0 = time.monotonic()
                r = run_loadgen_once(cfg, setup.work, f"idle-{name}", timeout=950)
                raw.append({"server": kind, "app": name, **r})
                rows.append(_row(kind, name, n, r))
                log(f"idle/{kind}/{name}: {r.get('alive_after_hold', 0)} alive, RSS "
                    f"{r.get('server_rss', 0) / 2**20:.0f} MB ({time.monotonic() - t0:.0f} s)")
                time.sleep(2)
    text = table(["server", "app", "sockets", "connected", "alive after hold", "connect s",
                  "RSS before MB", "RSS after MB", "KB per socket", "RSS at 10,000 MB",
                  f"target: {TARGET[0]}"], rows)
    ctx.report.add(f"4. Idle capacity: {n:,} connected sockets", text + "\n\n" + NOTE)
    ctx.report.data["idle"] = raw
