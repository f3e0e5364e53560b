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
              variants: tuple[str, ...] = ()) -> dict[str, Any]:
    from streamzy.app import create_app
    from streamzy.config import Settings
    from streamzy.guards.context import RequestInfo

    env = fixtures.server_env(fx.db_url, keys, work)
    settings = Settings(_env_file=None, **{k.removeprefix("STREAMZY_").lower(): v  # type: ignore[arg-type]
                                            for k, v in env.items()})
    app = create_app(settings)
    events = app.events
    for name in variants:
        VARIANTS[name][1](app)
    counts = _count_database_work(app.services.db)
    write_times = _time_writes(app.services.messages)
    handler = app.sio.handlers["/"]["message"]
    room = fx.rooms[0]
    sids = []
    for i, client in enumerate(fx.clients):
        environ = {"asgi.scope": {"headers": [
            (b"cookie", f"streamzy_session={client['cookie']}".encode())],
            "client": ("127.0.0.1", 1)}}
        principal = await events._authenticate(environ, None, RequestInfo("127.0.0.1", "bench"))
        sid = f"sid{i}"
        events._principals[sid] = principal
        events._rooms_of[sid] = {room}
        sids.append(sid)
    text = "x" * 200

    async def sender(k: int, n: int, tag: str) -> int:
        bad = 0
        for j in range(n):
            ack = await handler(sids[k], {"room": room, "client_msg_id": f"{tag}{k}-{j}",
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

def _cached_session(app: Any) -> None:
    """Session validity from memory (revocations are pushed to sockets by the registry)."""
    async def still_valid(sid: str, principal: Any, *, touch: bool) -> bool:
        return True
    app.events._still_valid = still_valid


def _cached_room_and_membership(app: Any) -> None:
    """Room rows and memberships cached in memory (invalidated on leave/kick/key rotation)."""
    rooms = app.services.rooms
    resolve, is_member = rooms.resolve, rooms.is_member
    room_cache: dict[Any, Any] = {}
    member_cache: dict[tuple[int, int], bool] = {}

    async def cached_resolve(ref: Any) -> Any:
        if ref not in room_cache:
            room_cache[ref] = await resolve(ref)
        return room_cache[ref]

    async def cached_is_member(user_id: int, room_id: int) -> bool:
        key = (user_id, room_id)
        if key not in member_cache:
            member_cache[key] = await is_member(user_id, room_id)
        return member_cache[key]

    rooms.resolve, rooms.is_member = cached_resolve, cached_is_member


def _bigger_pool(app: Any) -> None:
    """A pool as large as the concurrency, so no connection (and thread) is opened per burst."""
    from sqlalchemy import event
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from streamzy.storage.db import _sqlite_pragmas

    db = app.services.db
    engine = create_async_engine(db.url, connect_args={"timeout": 30}, pool_size=32,
                                 max_overflow=0)
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    db.engine = engine
    db.sessions = async_sessionmaker(engine, expire_on_commit=False)


def _core_writer(app: Any) -> None:
    """The same three statements per batch, on a Core connection instead of an ORM session."""
    from sqlalchemy import insert, select, tuple_, update

    from streamzy.services.messages import SendResult, StoredMessage
    from streamzy.storage.models import Message, Room

    messages = app.services.messages
    db = app.services.db
    msg, room_t = Message.__table__, Room.__table__
    returning = insert(msg).returning(msg.c.id, sort_by_parameter_order=True)

    async def write(batch: list[Any]) -> list[Any]:
        now = messages._clock.now()
        async with db.engine.begin() as conn:
            pairs = list({(p.sender.user_id, p.client_msg_id) for p in batch})
            existing = {(r.sender_id, r.client_msg_id): SendResult(r.id, r.seq, True)
                        for r in await conn.execute(select(
                            msg.c.id, msg.c.seq, msg.c.sender_id, msg.c.client_msg_id)
                            .where(tuple_(msg.c.sender_id, msg.c.client_msg_id).in_(pairs)))}
            fresh, seen = [], set()
            for item in batch:
                pair = (item.sender.user_id, item.client_msg_id)
                if pair not in existing and pair not in seen:
                    seen.add(pair)
                    fresh.append(item)
            by_room: dict[int, list[Any]] = {}
            for item in fresh:
                by_room.setdefault(item.room_id, []).append(item)
            rows: list[dict[str, Any]] = []
            for room_id, items in by_room.items():
                last = (await conn.execute(
                    update(room_t).where(room_t.c.id == room_id)
                    .values(last_seq=room_t.c.last_seq + len(items))
                    .returning(room_t.c.last_seq))).scalar_one()
                first = last - len(items) + 1
                rows += [{"room_id": room_id, "seq": first + k, "sender_id": i.sender.user_id,
                          "client_msg_id": i.client_msg_id, "key_version": i.key_version,
                          "ciphertext": i.ciphertext, "created_at": now}
                         for k, i in enumerate(items)]
            ids = [r[0] for r in await conn.execute(returning, rows)] if rows else []
        stored, results = [], dict(existing)
        fresh_items = [i for items in by_room.values() for i in items]
        for item, row, new_id in zip(fresh_items, rows, ids, strict=True):
            results[(item.sender.user_id, item.client_msg_id)] = SendResult(new_id, row["seq"],
                                                                           False)
            stored.append(StoredMessage(new_id, item.room_id, row["seq"], item.sender.user_id,
                                        item.sender.username, item.sender.display_name,
                                        item.client_msg_id, item.text, now, item.sender.is_bot))
        fresh_ids = {id(i) for i in fresh_items}
        for item in batch:
            result = results[(item.sender.user_id, item.client_msg_id)]
            if id(item) not in fresh_ids:
                result = SendResult(result.id, result.seq, True)
            if not item.future.done():
                item.future.set_result(result)
        stored.sort(key=lambda m: (m.room_id, m.seq))
        return stored

    messages._write = write


def _thread_writer_no_autocheckpoint(app: Any) -> None:
    """As "thread", with SQLite's automatic WAL checkpoint off on the writer connection (a
    real change would checkpoint from a background task instead)."""
    from benchmarks.experiments.thread_writer import install
    install(app.services.messages, app.services.db.url, autocheckpoint=False)


def _thread_writer(app: Any) -> None:
    """The batch transaction as one blocking function in one thread hop."""
    from benchmarks.experiments.thread_writer import install
    install(app.services.messages, app.services.db.url)


VARIANTS = {
    "gcfreeze": ("gc.freeze() after start-up (full collections skip start-up objects)",
                 lambda app: None),
    "thread": ("whole batch transaction in one thread hop (sync sqlite3)", _thread_writer),
    "thread-nockpt": ("as thread, automatic WAL checkpoints off",
                      _thread_writer_no_autocheckpoint),
    "core": ("message writer on a Core connection, not an ORM session", _core_writer),
    "session": ("session validity cached per socket", _cached_session),
    "room": ("room and membership cached", _cached_room_and_membership),
    "pool": ("pool of 32 connections, no overflow churn", _bigger_pool),
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
    times: list[tuple[int, float]] = []
    write = messages._write

    async def timed(batch: list[Any]) -> Any:
        t0 = time.perf_counter()
        try:
            return await write(batch)
        finally:
            times.append((len(batch), (time.perf_counter() - t0) * 1000))

    messages._write = timed
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
        out = asyncio.run(run(args.count, args.concurrency, args.profile, Path(tmp), fx, keys,
                              variants))
    profile = out.pop("profile", None)
    print(" ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}"
                   for k, v in out.items()))
    if profile:
        print(profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
