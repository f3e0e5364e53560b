"""Streamzy's per-message CPU cost without sockets: the `message` handler called in-process.

    python benchmarks/micro_send.py                 # 2,000 messages, 20 concurrent senders
    python benchmarks/micro_send.py --profile       # plus a pyinstrument tree of the path

Calls the same guarded `message` handler a socket event reaches (session re-check,
validation, membership, rate limit, seal, group-committed insert, then the delivery
emit), with nobody in the room, so what is left is Streamzy's own work per message.
Reports CPU per message (all threads, aiosqlite's included) and where it goes.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import fixtures  # noqa: E402


async def run(count: int, concurrency: int, profile: bool, work: Path,
              fx: fixtures.Fixture, keys: fixtures.Secrets,
              variants: tuple[str, ...] = (), text: str = "x" * 200) -> dict[str, Any]:
    from streamzy.app import create_app
    from streamzy.config import Settings

    env = fixtures.server_env(fx.db_url, keys, work)
    settings = Settings(_env_file=None, **{k.removeprefix("STREAMZY_").lower(): v  # type: ignore[arg-type]
                                            for k, v in env.items()})
    app = create_app(settings)
    realtime = app.realtime
    for name in variants:
        VARIANTS[name][1](app)
    counts = _count_database_work(app.services.db)
    write_times = _time_writes(app.services.messages)
    room = fx.rooms[0]
    sids = []
    for i, client in enumerate(fx.clients):
        environ = {"asgi.scope": {"headers": [
            (b"cookie", f"streamzy_session={client['cookie']}".encode())],
            "client": ("127.0.0.1", 1)}}
        principal = await realtime.handshake.authenticate(environ, None)
        sid = f"sid{i}"
        realtime.namespace.adopt(sid, principal)  # a connection without a transport
        realtime.presence.record_joined(sid, principal, room)
        sids.append(sid)

    async def sender(k: int, n: int, tag: str) -> int:
        bad = 0
        for j in range(n):
            ack = await realtime.namespace.trigger_event(
                "message", sids[k], {"room": room, "client_msg_id": f"{tag}{k}-{j}",
                                     "text": text})
            if not ack.get("ok"):
                bad += 1
        return bad

    # warm up: compiled-statement caches, the room key, the pool
    await asyncio.gather(*(sender(k, 5, "w") for k in range(concurrency)))
    profiler = None
    if profile:
        from pyinstrument import Profiler
        profiler = Profiler(interval=0.0005, async_mode="enabled")
        profiler.start()
    if "gcfreeze" in variants:
        gc.collect()
        gc.freeze()  # startup objects leave the collector's view (permanent generation)
    pauses = _gc_pauses()
    per = count // concurrency
    for key in counts:
        counts[key] = 0
    write_times.clear()
    threads0 = _thread_cpu()
    c0, t0 = time.process_time(), time.perf_counter()
    bad = sum(await asyncio.gather(*(sender(k, per, "m") for k in range(concurrency))))
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    threads1 = _thread_cpu()
    gc.callbacks.remove(pauses.callback)
    by_thread = {name: threads1[name] - threads0.get(name, 0) for name in threads1}
    if profiler is not None:
        profiler.stop()
    await app.services.close()
    out = {"messages": per * concurrency, "errors": bad, "cpu_s": cpu, "wall_s": wall,
           "cpu_us_per_message": cpu * 1e6 / (per * concurrency),
           "messages_per_cpu_second": per * concurrency / cpu,
           **{f"{k}_per_message": round(v / (per * concurrency), 2) for k, v in counts.items()},
           **_write_summary(write_times),
           "gc_full_collections": len(pauses.full),
           "gc_full_pause_ms_max": round(max(pauses.full, default=0), 1),
           "gc_pause_ms_max": round(pauses.worst, 1),
           "cpu_by_thread": {k: round(v, 2) for k, v in sorted(by_thread.items(),
                                                              key=lambda kv: -kv[1])[:6]}}
    if profiler is not None:
        out["profile"] = profiler.output_text(unicode=False, color=False, show_all=False,
                                              short_mode=False)
    return out


# ---- what-if variants: each approximates one recommended change, to size its effect ---------
# They patch the running app in this process only (never the code in streamzy/).

def _bigger_pool(app: Any) -> None:
    """A pool as large as the concurrency, so no connection (and thread) is opened per burst."""
    from sqlalchemy import event
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from streamzy.storage.db import sqlite_pragmas

    db = app.services.db
    engine = create_async_engine(db.url, connect_args={"timeout": 30}, pool_size=32,
                                 max_overflow=0)
    event.listen(engine.sync_engine, "connect", sqlite_pragmas)
    db.engine = engine
    db.sessions = async_sessionmaker(engine, expire_on_commit=False)


def _no_search_index(app: Any) -> None:
    """Messages stored without search terms: what the index adds to a send, by difference."""
    async def none(room_id: int, version: int, text: str) -> tuple[str, ...]:
        return ()

    app.services.messages._search_terms = none


VARIANTS = {
    "gcfreeze": ("gc.freeze() after start-up (full collections skip start-up objects)",
                 lambda app: None),
    "pool": ("pool of 32 connections, no overflow churn", _bigger_pool),
    "nosearch": ("no blind search index (the send path before issue 18)", _no_search_index),
}


class _Pauses:
    def __init__(self) -> None:
        self.full: list[float] = []
        self.worst = 0.0
        self._t0 = 0.0

    def callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
            return
        ms = (time.perf_counter() - self._t0) * 1000
        self.worst = max(self.worst, ms)
        if info.get("generation") == 2:
            self.full.append(ms)


def _gc_pauses() -> _Pauses:
    """Every garbage-collector pause (the event loop stands still during each)."""
    pauses = _Pauses()
    gc.callbacks.append(pauses.callback)
    return pauses


def _time_writes(messages: Any) -> list[tuple[int, float]]:
    """(batch size, wall ms) of every group-commit transaction."""
    from benchmarks.experiments.diagnostics import time_writes

    times: list[tuple[int, float]] = []
    time_writes(messages, lambda size, ms: times.append((size, ms)))
    return times


def _write_summary(times: list[tuple[int, float]]) -> dict[str, Any]:
    if not times:
        return {}
    walls = sorted(t for _, t in times)
    return {"batches": len(times), "mean_batch": round(sum(n for n, _ in times) / len(times), 1),
            "commit_ms_p50": round(walls[len(walls) // 2], 1),
            "commit_ms_p99": round(walls[int(len(walls) * 0.99)], 1),
            "commit_ms_max": round(walls[-1], 1),
            "slowest": sorted(((round(t, 1), i) for i, (_, t) in enumerate(times)),
                              reverse=True)[:4]}


def _count_database_work(db: Any) -> dict[str, int]:
    """Count units of work, SQL statements, commits and new connections."""
    from sqlalchemy import event

    counts = {"units": 0, "statements": 0, "commits": 0, "new_connections": 0}
    engine = db.engine.sync_engine

    @event.listens_for(engine, "before_cursor_execute")
    def _statement(*args: Any) -> None:
        counts["statements"] += 1

    @event.listens_for(engine, "commit")
    def _commit(*args: Any) -> None:
        counts["commits"] += 1

    @event.listens_for(engine, "connect")
    def _connect(*args: Any) -> None:
        counts["new_connections"] += 1

    unit = db.unit

    def counted_unit() -> Any:
        counts["units"] += 1
        return unit()

    db.unit = counted_unit
    return counts


def _thread_cpu() -> dict[str, float]:
    """CPU seconds per thread, from /proc (names are tid:comm)."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            stat = Path(f"/proc/self/task/{tid}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1: stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        out[f"{tid}:{name}"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--words", type=int, default=0,
                        help="send N words of chat text (indexed by search) instead of one "
                             "200-character run (too long to be indexed)")
    parser.add_argument("--what-if", default="", metavar="LIST",
                        help="comma list of " + ", ".join(f"{k} ({v[0]})"
                                                         for k, v in VARIANTS.items()))
    args = parser.parse_args()
    variants = tuple(v for v in args.what_if.split(",") if v)
    for name in variants:
        if name not in VARIANTS:
            parser.error(f"unknown what-if {name!r}")
    with tempfile.TemporaryDirectory(prefix="streamzy-micro-") as tmp:
        keys = fixtures.Secrets()
        fx = fixtures.chat_fixture(Path(tmp), keys, rooms=1, per_room=args.concurrency)
        words = ("deploy the staging server after lunch please check metrics dashboard "
                 "alerts before tomorrow morning release notes meeting").split()
        text = " ".join(words[i % len(words)] + (str(i) if i >= len(words) else "")
                        for i in range(args.words)) if args.words else "x" * 200
        out = asyncio.run(run(args.count, args.concurrency, args.profile, Path(tmp), fx, keys,
                              variants, text))
    profile = out.pop("profile", None)
    print(" ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}"
                   for k, v in out.items()))
    if profile:
        print(profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
