"""Scenario 5, history: 100-message pages at random positions in a room holding 1,000,000
sealed messages, emit to ack; the page must stay one index range scan as the table grows."""

from __future__ import annotations

import time
from typing import Any

from benchmarks import fixtures
from benchmarks.harness.config import log
from benchmarks.harness.context import Context
from benchmarks.harness.loadgen import run_loadgen_once
from benchmarks.harness.processes import start_server
from benchmarks.harness.results import fmt, table

TARGET = ("history p99 < 20 ms at 1,000,000 messages", 20.0)
NOTE = ("One signed-in client asks for 100-message pages at random positions "
        "(`history {room, before_seq, limit: 100}`), one at a time; time from emit to ack. "
        "The baseline stores nothing, so there is no baseline row.")


def run(ctx: Context) -> None:
    count = 100_000 if ctx.quick else 1_000_000
    pages = 50 if ctx.quick else 300
    work = ctx.workdir / "history"
    work.mkdir(parents=True, exist_ok=True)
    keys = fixtures.Secrets()
    t0 = time.monotonic()
    fx = fixtures.history_fixture(work, keys, count)
    log(f"history: {count:,} messages stored in {time.monotonic() - t0:.0f} s")
    env = fixtures.server_env(fx.db_url, keys, work)
    rows: list[list[str]] = []
    raw: list[dict[str, Any]] = []
    for kind in ctx.servers:
        server = start_server("streamzy", kind, work, env)
        try:
            cfg = {"url": server.url, "mode": "history", "clients": fx.clients,
                   "serverPids": [server.proc.pid], "deadline": 600, "settle": 0.5,
                   "history": {"room": fx.rooms[0], "count": pages, "limit": 100,
                               "maxSeq": count, "warmup": 5}}
            r = run_loadgen_once(cfg, work, f"history-{kind}", timeout=650)
        finally:
            server.stop()
        raw.append({"server": kind, **r})
        h = r.get("history_ms") or {}
        rows.append([kind, f"{count:,}", str(h.get("n")), fmt(r.get("messages_per_page"), ".0f"),
                     fmt(h.get("p50"), ".1f"), fmt(h.get("p95"), ".1f"), fmt(h.get("p99"), ".1f"),
                     fmt(h.get("max"), ".1f"), str(r.get("history_errors")),
                     ("met" if h.get("p99") is not None and h["p99"] < TARGET[1] else "MISSED")])
        log(f"history/{kind}: p50 {fmt(h.get('p50'), '.1f')} p99 {fmt(h.get('p99'), '.1f')} ms")
    text = table(["server", "stored messages", "pages", "messages/page", "p50 ms", "p95 ms",
                  "p99 ms", "max ms", "errors", f"target: {TARGET[0]}"], rows)
    ctx.report.add(f"5. History: 100-message pages with {count:,} stored messages",
                   text + "\n\n" + NOTE)
    ctx.report.data["history"] = raw
