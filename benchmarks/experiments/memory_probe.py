"""Memory probe for a server under waves of sockets (benchmark use only).

Wraps the ASGI app named by $PROBE_TARGET (default ``streamzy.asgi:app``; the baseline is
``benchmarks.baseline_server:app``) and answers three HTTP paths itself, on the server's
own event loop, so the runner can ask between waves without touching the app:

- ``GET /__probe/report``: RSS (VmRSS, VmHWM), what the Python allocator and the C heap
  hold (``sys._debugmallocstats``-free: ``mallinfo2``), the sizes of every per-connection
  structure of python-socketio, python-engineio and (for Streamzy) the chat namespace,
  the rate limiter and the audit windows, live asyncio tasks, and with tracemalloc on
  (``$PROBE_TRACEMALLOC=frames``) the traced total and the top growth by file:line since
  the previous report and since the first;
- ``GET /__probe/trim``: ``gc.collect()`` then glibc's ``malloc_trim(0)``, RSS before/after;
- ``GET /__probe/gc``: ``gc.collect()`` only.

With ``$PROBE_AUTOTRIM=N`` it also tries a policy Streamzy could ship: ``malloc_trim(0)``
once N Engine.IO sockets have closed since the last trim (checked every 5 s), timing each.

Everything answers on 127.0.0.1 like the rest of the harness; Streamzy never imports this.

    PROBE_TARGET=streamzy.asgi:app PROBE_TRACEMALLOC=8 \\
        hypercorn -c hypercorn.toml benchmarks.experiments.memory_probe:app
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import importlib
import json
import os
import sys
import time
import tracemalloc
from collections import Counter
from typing import Any

FRAMES = int(os.environ.get("PROBE_TRACEMALLOC", "0") or 0)
if FRAMES:
    tracemalloc.start(FRAMES)
TARGET = os.environ.get("PROBE_TARGET", "streamzy.asgi:app")
TOP = int(os.environ.get("PROBE_TOP", "25"))


def _load(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name or "app")


_libc: Any = None
with_libc = ctypes.util.find_library("c")
if with_libc:
    try:
        _libc = ctypes.CDLL(with_libc)
    except OSError:  # pragma: no cover - not glibc
        _libc = None


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def mallinfo() -> dict[str, int]:
    """glibc's view of the C heap (main arena + others): in use, free inside, mmapped."""
    if _libc is None or not hasattr(_libc, "mallinfo2"):
        return {}
    _libc.mallinfo2.restype = _MallInfo2
    info = _libc.mallinfo2()
    return {"heap_total": info.arena, "heap_in_use": info.uordblks,
            "heap_free": info.fordblks, "mmapped": info.hblkhd, "top_pad": info.keepcost}


def malloc_trim() -> bool:
    if _libc is None or not hasattr(_libc, "malloc_trim"):
        return False
    return bool(_libc.malloc_trim(0))


def pymalloc() -> dict[str, int]:
    """CPython's small-object allocator (objects <= 512 bytes live in its 1 MiB arenas,
    mmapped outside glibc's heap): arenas held, bytes in live blocks, bytes free inside."""
    import re
    import tempfile

    with tempfile.TemporaryFile() as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode(errors="replace")
    fields = {"# arenas allocated current": "pymalloc_arenas",
              "# bytes in allocated blocks": "pymalloc_allocated",
              "# bytes in available blocks": "pymalloc_available",
              "unused pools": "pymalloc_unused_pools"}
    out = {}
    for line in text.splitlines():
        for label, key in fields.items():
            if label in line:
                found = re.search(r"=\s*([\d,]+)\s*$", line)
                if found:
                    out[key] = int(found.group(1).replace(",", ""))
    return out


def status() -> dict[str, int]:
    """VmRSS / VmHWM / RssAnon of this process, in bytes."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) * 1024
    return out


def _len(obj: Any) -> int | None:
    try:
        return len(obj)
    except TypeError:
        return None


def structures(app: Any) -> dict[str, Any]:
    """Sizes of every structure that holds something per socket (0 or near it after a
    wave has left, except what a library keeps on purpose)."""
    sio = getattr(app, "sio", None) or getattr(
        sys.modules.get("benchmarks.baseline_server"), "sio", None)
    out: dict[str, Any] = {}
    if sio is not None:
        manager = sio.manager
        rooms = manager.rooms.get("/", {})
        out.update({
            "eio.sockets": len(sio.eio.sockets),
            "sio.environ": len(sio.environ),
            "sio._binary_packet": len(sio._binary_packet),
            "manager.rooms": len(rooms),
            "manager.room_members": sum(len(m) for m in rooms.values()),
            "manager.eio_to_sid": _len(getattr(manager, "eio_to_sid", {})),
            "manager.callbacks": len(manager.callbacks),
            "manager.pending_connect": sum(len(v) for v in manager.pending_connect.values()),
            "manager.pending_disconnect": sum(len(v) for v in
                                              manager.pending_disconnect.values()),
        })
    realtime = getattr(app, "realtime", None)
    if realtime is not None:
        out.update({f"ns.{k}": v for k, v in realtime.namespace.state_sizes().items()})
        out["connections.tasks"] = len(realtime.connections._tasks)
        out["connections.dropping"] = len(realtime.connections._dropping)
        services = app.services
        limiter = services.limiter
        store = getattr(limiter, "store", None)
        tat = getattr(store, "_tat", None)
        if tat is not None:
            out["limiter.keys"] = len(tat)
            out["limiter.socket_keys"] = sum(1 for k in tat if k.startswith("events:"))
        windows = getattr(getattr(services, "audit_log", None), "_windows", None)
        if windows is not None:
            out["audit.windows"] = len(windows._open)
    baseline = sys.modules.get("benchmarks.baseline_server")
    if baseline is not None and realtime is None:
        out["baseline._names"] = len(baseline._names)
    tasks = asyncio.all_tasks()
    out["asyncio.tasks"] = len(tasks)
    names = Counter(getattr(t.get_coro(), "__qualname__", "?") for t in tasks)
    out["asyncio.tasks_by_coro"] = dict(names.most_common(8))
    return out


AUTOTRIM = int(os.environ.get("PROBE_AUTOTRIM", "0") or 0)
GARBAGE = os.environ.get("PROBE_GARBAGE") == "1"  # count the cycle garbage by type
# The other policy: malloc_trim(0) right after an automatic full collection that freed at
# least this many objects (no collection of our own: the collector's pause is paid anyway).
TRIM_AFTER_GC = int(os.environ.get("PROBE_TRIM_AFTER_GC", "0") or 0)
AUTOTRIM_EVERY = 2.0  # seconds between checks


class Probe:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.first: tracemalloc.Snapshot | None = None
        self.last: tracemalloc.Snapshot | None = None
        self.reports = 0
        self.autotrim: asyncio.Future[None] | None = None
        self.autotrims: list[float] = []  # ms each automatic trim took

    def _sio(self) -> Any:
        return getattr(self.app, "sio", None) or getattr(
            sys.modules.get("benchmarks.baseline_server"), "sio", None)

    async def _autotrim(self) -> None:
        """The policy Streamzy could ship: once at least PROBE_AUTOTRIM Engine.IO sockets
        have closed since the last trim, gc.collect() and malloc_trim(0) on the next check
        (every 2 s), so the heap freed by closed sockets goes back to the system."""
        sio = self._sio()
        if sio is None:
            return
        closed = 0
        previous = len(sio.eio.sockets)
        while True:
            await asyncio.sleep(AUTOTRIM_EVERY)
            now = len(sio.eio.sockets)
            closed += max(0, previous - now)
            previous = now
            if closed >= AUTOTRIM:
                t0 = time.perf_counter()
                # closed connections are freed by the cycle collector (their zlib buffers
                # included): collect first, or the trim finds little to give back
                gc.collect()
                malloc_trim()
                self.autotrims.append(round((time.perf_counter() - t0) * 1000, 2))
                closed = 0

    def _top(self, new: tracemalloc.Snapshot, old: tracemalloc.Snapshot) -> list[str]:
        stats = new.compare_to(old, "lineno")
        return [f"{s.size_diff / 1024:+.1f} KiB {s.count_diff:+d} blocks "
                f"{s.traceback[0].filename.split('site-packages/')[-1]}:"
                f"{s.traceback[0].lineno}" for s in stats[:TOP] if s.size_diff]

    def report(self, label: str) -> dict[str, Any]:
        before_gc = status()["VmRSS"]
        heap_before_gc = mallinfo().get("heap_in_use", 0)
        garbage = self.garbage() if GARBAGE else {}
        t0 = time.perf_counter()
        unreachable = gc.collect()
        out: dict[str, Any] = {"label": label, **garbage, "t": round(time.time(), 1),
                               "rss_before_gc": before_gc, "heap_in_use_before_gc":
                               heap_before_gc, "gc_unreachable": unreachable,
                               "gc_ms": round((time.perf_counter() - t0) * 1000, 1), **status(),
                               **mallinfo(), **pymalloc(), "gc_objects": len(gc.get_objects()),
                               "gc_frozen": gc.get_freeze_count(),
                               **structures(self.app)}
        if tracemalloc.is_tracing():
            snap = tracemalloc.take_snapshot().filter_traces((
                tracemalloc.Filter(False, tracemalloc.__file__),
                tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"),
                tracemalloc.Filter(False, __file__)))
            out["traced"], out["traced_peak"] = tracemalloc.get_traced_memory()
            out["tracemalloc_overhead"] = tracemalloc.get_tracemalloc_memory()
            if self.last is not None:
                out["top_since_last"] = self._top(snap, self.last)
            if self.first is not None:
                out["top_since_first"] = self._top(snap, self.first)
            else:
                self.first = snap
            self.last = snap
        if AUTOTRIM or TRIM_AFTER_GC:
            out["autotrim_ms"] = self.autotrims
        self.reports += 1
        return out

    @staticmethod
    def garbage() -> dict[str, Any]:
        """What the cycle collector would free now, by type (kept for one moment with
        DEBUG_SAVEALL, counted, then released and freed by the report's own collect)."""
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            gc.collect()
            kinds = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
        return {"garbage_total": sum(kinds.values()),
                "garbage_by_type": dict(kinds.most_common(40))}

    def trim(self) -> dict[str, Any]:
        gc.collect()
        before = status()
        t0 = time.perf_counter()
        trimmed = malloc_trim()
        ms = (time.perf_counter() - t0) * 1000
        return {"trimmed": trimmed, "trim_ms": round(ms, 2), "rss_before": before["VmRSS"],
                "rss_after": status()["VmRSS"], **mallinfo()}

    def _after_gc(self, loop: asyncio.AbstractEventLoop) -> Any:
        def callback(phase: str, info: dict[str, Any]) -> None:
            if (phase == "stop" and info.get("generation") == 2
                    and info.get("collected", 0) >= TRIM_AFTER_GC):
                # the collection may run on any thread: trim on the loop, after it
                loop.call_soon_threadsafe(self._trim_now)
        return callback

    def _trim_now(self) -> None:
        t0 = time.perf_counter()
        malloc_trim()
        self.autotrims.append(round((time.perf_counter() - t0) * 1000, 2))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if AUTOTRIM and self.autotrim is None:
            self.autotrim = asyncio.get_running_loop().create_task(self._autotrim())
        if TRIM_AFTER_GC and self.autotrim is None:
            self.autotrim = asyncio.get_running_loop().create_future()  # installed once
            gc.callbacks.append(self._after_gc(asyncio.get_running_loop()))
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith("/__probe/"):
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode()
        label = query.partition("label=")[2] or str(self.reports)
        if path == "/__probe/report":
            body = self.report(label)
        elif path == "/__probe/trim":
            body = self.trim()
        elif path == "/__probe/gc":
            body = {"collected": gc.collect(), **status()}
        else:
            body = {"error": "unknown probe path"}
        data = json.dumps(body).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})


app = Probe(_load(TARGET))
