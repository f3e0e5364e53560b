"""Chat latency while others upload 10 MiB files (issue 18: an upload must not raise other
users' chat p99 beyond the benchmark's bound, 1.5x as for key rotation).

A real Streamzy server (``streamzy serve``, its own process, SQLite, FULL durability) and
real Socket.IO clients sending at a steady rate in one room. In the same run, one phase
after another: chat alone; chat while uploaders post 10 MiB PDFs back to back through the
browser route (sniff, seal, one 13 MiB insert each); chat while they post ~10 MiB JPEG
photos (Pillow decodes, re-encodes and thumbnails each: the heaviest upload there is);
chat with one 10 MiB upload a second (a busy server: 30 people at the default
``uploads`` rate at once); chat alone again (drift). Prints each phase and p99 / p99 without uploads.

    python benchmarks/upload_load.py
    python benchmarks/upload_load.py --senders 10 --rate 5 --seconds 20 --uploaders 2 \
        --markdown benchmarks/results/2026-12-01-uploads-<sha>.md
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import socketio
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import fixtures  # noqa: E402 - after the path set-up for direct runs
from benchmarks.rotation import Phase, _after, _healthy, _load, _port  # noqa: E402

MIB = 1024 * 1024
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def pdf_bytes(size: int) -> bytes:
    """A 'PDF' of ``size`` bytes: sniffed as PDF, stored as is (no decoding on the server)."""
    head = b"%PDF-1.7\n%benchmark\n"
    return head + os.urandom(size - len(head))


def jpeg_bytes(limit: int) -> bytes:
    """A photo-sized JPEG of random pixels just under ``limit`` bytes (the worst case for
    the server's Pillow work: decode, orient, re-encode, thumbnail)."""
    width, height = 3000, 2200
    while True:
        image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=92)
        if out.tell() <= limit:
            return out.getvalue()
        width, height = int(width * 0.93), int(height * 0.93)


async def _uploads(url: str, cookie: str, room: int, data: bytes, name: str, workers: int,
                   until: Any, every: float = 0.0) -> tuple[int, int, list[float]]:
    """``workers`` uploaders posting ``data`` until ``until()``: back to back, or each
    starting one upload every ``every`` seconds."""
    done = failed = 0
    took: list[float] = []
    async with httpx.AsyncClient(base_url=url, cookies={"streamzy_session": cookie},
                                 timeout=120) as http:
        page = await http.get("/rooms")
        match = CSRF_META.search(page.text)
        if match is None:
            raise RuntimeError(f"no CSRF token on /rooms ({page.status_code})")
        headers = {"X-CSRF-Token": match.group(1), "X-Filename": name,
                   "Accept": "application/json"}

        async def worker() -> None:
            nonlocal done, failed
            next_at = time.monotonic()
            while not until():
                if every:
                    await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                    next_at += every
                    if until():
                        break
                started = time.perf_counter()
                answer = await http.post(f"/rooms/{room}/files", content=data, headers=headers)
                if answer.status_code == 201:
                    done += 1
                    took.append(time.perf_counter() - started)
                else:
                    failed += 1
                    print(f"upload refused: {answer.status_code} {answer.text[:200]}",
                          flush=True)
                    await asyncio.sleep(1)

        await asyncio.gather(*(worker() for _ in range(workers)))
    return done, failed, took


async def _phase_with_uploads(clients: list[socketio.AsyncClient], url: str, cookie: str,
                              room: int, args: argparse.Namespace, data: bytes, name: str,
                              label: str, tag: str, every: float = 0.0,
                              workers: int = 0) -> tuple[Phase, str]:
    stop = _after(args.seconds)
    t0 = time.monotonic()
    (latencies, errors), (done, failed, took) = await asyncio.gather(
        _load(clients, room, args.rate, stop, tag),
        _uploads(url, cookie, room, data, name, workers or args.uploaders, stop, every))
    phase = Phase(label, latencies, errors, time.monotonic() - t0)
    mean = sum(took) / len(took) if took else 0.0
    note = (f"{label}: {done} uploads of {len(data) / MIB:.1f} MiB ({failed} refused), "
            f"{done * len(data) / MIB / phase.seconds:.1f} MiB/s, {mean:.2f} s each on average")
    return phase, note


async def run(args: argparse.Namespace) -> str:
    workdir = Path(tempfile.mkdtemp(prefix="streamzy-uploads-"))
    keys = fixtures.Secrets()
    fx = await asyncio.to_thread(fixtures.chat_fixture, workdir, keys, rooms=1,
                                 per_room=args.senders + 1)
    pdf = pdf_bytes(args.size_mib * MIB)
    jpeg = await asyncio.to_thread(jpeg_bytes, args.size_mib * MIB)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("STREAMZY_")},
           **fixtures.server_env(fx.db_url, keys, workdir), "PYTHONPATH": str(ROOT),
           "STREAMZY_ATTACHMENT_MAX_BYTES": str(args.size_mib * MIB),
           "STREAMZY_ATTACHMENT_QUOTA_BYTES": str(1024 ** 4)}
    port = _port()
    server = subprocess.Popen([sys.executable, "-m", "streamzy.cli", "serve", "--port",  # noqa: ASYNC220 - Popen returns at once
                               str(port), "--config", str(ROOT / "hypercorn.toml")],
                              cwd=workdir, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    clients: list[socketio.AsyncClient] = []
    room = fx.rooms[0]
    senders, uploader = fx.clients[:-1], fx.clients[-1]
    notes: list[str] = []
    try:
        await _healthy(url, server)
        for entry in senders:
            client = socketio.AsyncClient(reconnection=False)
            await client.connect(url, headers={"Cookie": f"streamzy_session={entry['cookie']}"},
                                 transports=["websocket"], wait_timeout=10)
            joined = await client.call("join", {"room": room}, timeout=30)
            assert joined.get("ok"), joined
            clients.append(client)
        await _load(clients, room, args.rate, _after(2.0), "warm")
        t0 = time.monotonic()
        base, base_errors = await _load(clients, room, args.rate, _after(args.seconds), "base")
        baseline = Phase("chat alone", base, base_errors, time.monotonic() - t0)
        with_pdf, note = await _phase_with_uploads(
            clients, url, uploader["cookie"], room, args, pdf, "big.pdf",
            f"chat + {args.uploaders} uploaders of {args.size_mib} MiB PDFs", "pdf")
        notes.append(note)
        with_jpeg, note = await _phase_with_uploads(
            clients, url, uploader["cookie"], room, args, jpeg, "photo.jpg",
            f"chat + {args.uploaders} uploaders of {len(jpeg) / MIB:.1f} MiB JPEG photos",
            "jpeg")
        notes.append(note)
        paced, note = await _phase_with_uploads(
            clients, url, uploader["cookie"], room, args, pdf, "paced.pdf",
            f"chat + one {args.size_mib} MiB PDF upload every {args.every:g} s", "paced",
            every=args.every, workers=1)
        notes.append(note)
        t0 = time.monotonic()
        again, again_errors = await _load(clients, room, args.rate, _after(args.seconds), "end")
        after = Phase("chat alone again (drift check)", again, again_errors,
                      time.monotonic() - t0)
    finally:
        for client in clients:
            await client.disconnect()
        server.terminate()
        server.wait(30)
    size = await asyncio.to_thread(
        lambda: sum(f.stat().st_size for f in workdir.glob("streamzy.db*")))
    bound = baseline.quantile(0.99)
    lines = [
        f"# Chat latency while others upload {args.size_mib} MiB files",
        "",
        f"- {len(senders)} senders x {args.rate} msg/s each, one room, SQLite (FULL), one "
        "server process (`streamzy serve`, hypercorn.toml), Python Socket.IO clients and "
        "httpx uploaders in this process",
        f"- {args.seconds:.0f} s per phase, phases one after another in the same run",
        *[f"- {n}" for n in notes],
        f"- database after the run: {size / MIB:,.0f} MiB",
        "",
        "| phase | acks | acks/s | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|",
        baseline.row(), with_pdf.row(), with_jpeg.row(), paced.row(), after.row(),
        "",
        f"**p99 / p99 of chat alone: back-to-back PDFs {with_pdf.quantile(0.99) / bound:.2f}x, "
        f"back-to-back JPEGs {with_jpeg.quantile(0.99) / bound:.2f}x, one upload every "
        f"{args.every:g} s {paced.quantile(0.99) / bound:.2f}x** (bound <= 1.5x, as for key "
        "rotation)",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--rate", type=float, default=5.0, help="messages/s per sender")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per phase")
    parser.add_argument("--uploaders", type=int, default=2, help="concurrent uploads")
    parser.add_argument("--size-mib", type=int, default=10)
    parser.add_argument("--every", type=float, default=1.0,
                        help="seconds between uploads in the paced phase")
    parser.add_argument("--markdown", default="", help="also write the table here")
    args = parser.parse_args(argv)
    report = asyncio.run(run(args))
    print(report)
    if args.markdown:
        Path(args.markdown).write_text(report, "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
