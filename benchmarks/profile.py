"""Sample Streamzy's send path under load with py-spy and summarise where the CPU goes.

    python benchmarks/profile.py --scenario fanout --rate 20
    python benchmarks/profile.py --scenario rooms --rate 100 --server uvicorn

Starts Streamzy pinned to CPU 0, connects the clients of the scenario from the Node load
generator (CPU 1), offers ``--rate`` msg/s and records the server's worker process with
``py-spy record`` for the measured window only (py-spy runs on CPU 1 too). Prints the top
functions by own time and by total time, and time per layer; writes the collapsed stacks
(``*.folded``, for flamegraph.pl or speedscope) next to the summary.
Needs ``pip install py-spy`` and ptrace rights (root, or kernel.yama.ptrace_scope=0).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import fixtures  # noqa: E402
from benchmarks.harness.config import APPS, LOAD_CPU  # noqa: E402
from benchmarks.harness.loadgen import LoadGen, chat_config, spread_senders  # noqa: E402
from benchmarks.harness.processes import start_server  # noqa: E402

SCENARIOS = {"fanout": (1, 200, 20), "rooms": (100, 10, 100)}

# Coarse layers, matched against "function (file)" frames; first match wins from the leaf.
LAYERS = [
    ("sqlalchemy/aiosqlite/sqlite", ("sqlalchemy", "aiosqlite", "sqlite3")),
    ("fernet/crypto", ("cryptography", "fernet")),
    ("pydantic validation", ("pydantic",)),
    ("streamzy code", ("streamzy/",)),
    ("socketio", ("socketio/",)),
    ("engineio", ("engineio/",)),
    ("wsproto/h11 (websocket framing)", ("wsproto", "h11")),
    ("hypercorn/uvicorn server", ("hypercorn", "uvicorn")),
    ("json", ("json/",)),
    ("asyncio event loop/tasks", ("asyncio/",)),
    ("threading/queue", ("threading.py", "queue.py", "concurrent/")),
]


_LINE = re.compile(r":\d+\)$")


def layer_of(frame: str) -> str | None:
    for name, needles in LAYERS:
        if any(n in frame for n in needles):
            return name
    return None


def summarise(folded: Path, top: int) -> str:
    self_time: collections.Counter[str] = collections.Counter()
    total_time: collections.Counter[str] = collections.Counter()
    layers: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in folded.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        # one entry per function: drop line numbers ("f (file.py:12)" -> "f (file.py)")
        frames = [_LINE.sub(")", f) for f in stack.split(";")]
        samples += count
        head = frames[0] if frames[0].startswith(("thread", "process")) else "?"
        threads[re.sub(r"\(\d+\)", "", head)] += count
        leaf = frames[-1]
        self_time[leaf] += count
        for frame in set(frames):
            total_time[frame] += count
        layer = None
        for frame in reversed(frames):
            layer = layer_of(frame)
            if layer:
                break
        layers[layer or "other (builtins, C)"] += count
    lines = [f"{samples} samples", "", "By thread:"]
    for name, n in threads.most_common(8):
        lines.append(f"  {100 * n / samples:5.1f}%  {name}")
    lines += ["", "By layer (innermost recognised frame):"]
    for name, n in layers.most_common():
        lines.append(f"  {100 * n / samples:5.1f}%  {name}")
    lines += ["", f"Top {top} by own time:"]
    for name, n in self_time.most_common(top):
        lines.append(f"  {100 * n / samples:5.1f}%  {name}")
    lines += ["", f"Top {top} by total time (frame anywhere on the stack):"]
    for name, n in total_time.most_common(top * 3):
        if name.startswith(("thread", "process")):
            continue
        lines.append(f"  {100 * n / samples:5.1f}%  {name}")
    return "\n".join(lines[: 12 + len(threads) + len(layers) + top * 4])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="fanout")
    parser.add_argument("--server", choices=["hypercorn", "uvicorn"], default="hypercorn")
    parser.add_argument("--app", choices=["streamzy", "baseline"], default="streamzy")
    parser.add_argument("--asgi", help="override the ASGI app (module:attribute)")
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--sample-rate", type=int, default=200)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--gil", action="store_true",
                        help="sample only the thread holding the GIL: where Python CPU goes, "
                             "without threads that wait for the GIL or in a system call")
    parser.add_argument("--out", type=Path, default=Path("profile-out"))
    args = parser.parse_args()
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(pyspy).exists():
        parser.error("py-spy not found: pip install py-spy")
    os.sched_setaffinity(0, {LOAD_CPU})
    if args.asgi:
        APPS[args.app] = args.asgi
    rooms, per_room, n_senders = SCENARIOS[args.scenario]
    work = Path(tempfile.mkdtemp(prefix="streamzy-profile-"))
    args.out.mkdir(parents=True, exist_ok=True)
    keys = fixtures.Secrets()
    fx = fixtures.chat_fixture(work, keys, rooms=rooms, per_room=per_room)
    env = fixtures.server_env(fx.db_url, keys, work) if args.app == "streamzy" else {}
    server = start_server(args.app, args.server, work, env)
    gen = None
    try:
        senders = spread_senders(rooms, per_room, n_senders)
        gen = LoadGen(chat_config(server, fx.clients, senders, 3600), work, "profile")
        gen.warm(min(args.rate, 20))
        stem = f"{args.app}-{args.scenario}-{args.server}-{args.rate:g}"
        folded = args.out / f"{stem}.folded"
        warmup = 2.0
        spy = None

        def record() -> None:
            nonlocal spy
            time.sleep(warmup)
            spy = subprocess.run(
                ["taskset", "-c", str(LOAD_CPU), pyspy, "record", "--pid",
                 str(server.worker_pid()), "--duration", str(int(args.duration)),
                 "--rate", str(args.sample_rate), "--nonblocking", "--threads",
                 "--format", "raw", "--output", str(folded), *(["--gil"] if args.gil else [])],
                capture_output=True, text=True, check=False)

        thread = threading.Thread(target=record)
        thread.start()
        result = gen.phase(rate=args.rate, duration=args.duration + 1, warmup=warmup, drain=5)
        thread.join(args.duration + 30)
        lat = result.get("latency_ms") or {}
        head = (f"{args.app} / {args.scenario} / {args.server} @ {args.rate:g} msg/s: "
                f"delivered {result.get('delivered_per_s', 0):.0f}/s, p50 "
                f"{lat.get('p50') or 0:.1f} ms, p99 {lat.get('p99') or 0:.1f} ms, lost "
                f"{result.get('lost')}, server CPU {result.get('server_cpu', 0):.2f} cores, "
                f"{result.get('server_cpu_us_per_message') or 0:.0f} us/message, "
                f"{result.get('server_cpu_us_per_delivery') or 0:.0f} us/delivery, "
                f"core-0 foreign load {100 * (result.get('server_core_foreign') or 0):.0f}%")
        if not folded.exists():
            print(head)
            print("py-spy produced nothing:", spy.stderr if spy else "")
            return 1
        text = head + "\n\n" + summarise(folded, args.top)
        (args.out / f"{stem}.txt").write_text(text + "\n")
        print(text)
    finally:
        if gen is not None:
            gen.close()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
