"""What the Prometheus metrics cost on the send path: metrics off and on, in the same run.

    python benchmarks/metrics_overhead.py                       # 6 rounds x 2,000 messages
    python benchmarks/metrics_overhead.py --rounds 4 --count 1000 --concurrency 20

Each round builds a fresh app on the same database, alternately with metrics off (nothing
configured: the no-op ``Metrics``) and on (``STREAMZY_METRICS_TOKEN`` set: counters and
histograms in the app's registry), and drives the guarded ``message`` handler a socket
event reaches (the same path as benchmarks/micro_send.py: session re-check, validation,
membership, rate limit, seal, group commit, ack, delivery emit) from ``--concurrency``
senders, with no transport, so the figures are Streamzy's own work. Alternating the
variants spreads any drift of the machine over both. Per variant it reports the median
over its rounds of: ack latency p50/p99 (handler entry to ack, what
``streamzy_ack_latency_seconds`` measures), throughput (messages per wall second) and CPU
per message; then on/off ratios. The "on" rounds check that the counters moved.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import fixtures  # noqa: E402

TOKEN = "bench-metrics-token-" + "abcdefghijklmnopqrstuvwxyz"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one_round(metrics_on: bool, tag: str, count: int, concurrency: int, work: Path,
                    fx: fixtures.Fixture, keys: fixtures.Secrets) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    from streamzy.app import create_app
    from streamzy.config import Settings

    env = fixtures.server_env(fx.db_url, keys, work)
    if metrics_on:
        env["STREAMZY_METRICS_TOKEN"] = TOKEN
    settings = Settings(_env_file=None, **{k.removeprefix("STREAMZY_").lower(): v  # type: ignore[arg-type]
                                            for k, v in env.items()})
    app = create_app(settings)
    assert app.services.metrics.enabled == metrics_on
    realtime = app.realtime
    room = fx.rooms[0]
    sids = []
    for i, client in enumerate(fx.clients[:concurrency]):
        environ = {"asgi.scope": {"headers": [
            (b"cookie", f"streamzy_session={client['cookie']}".encode())],
            "client": ("127.0.0.1", 1)}}
        principal = await realtime.handshake.authenticate(environ, None)
        sid = f"sid{i}"
        realtime.namespace.adopt(sid, principal)  # a connection without a transport
        realtime.presence.record_joined(sid, principal, room)
        sids.append(sid)
    text = "x" * 200
    latencies: list[float] = []

    async def sender(k: int, n: int, prefix: str, record: bool) -> int:
        bad = 0
        for j in range(n):
            started = time.perf_counter()
            ack = await realtime.namespace.trigger_event(
                "message", sids[k], {"room": room, "client_msg_id": f"{prefix}{k}-{j}",
                                     "text": text})
            if record:
                latencies.append(time.perf_counter() - started)
            if not ack.get("ok"):
                bad += 1
        return bad

    # warm up: compiled statements, the room key, the pool
    await asyncio.gather(*(sender(k, 5, f"w{tag}-", False) for k in range(concurrency)))
    per = count // concurrency
    c0, t0 = time.process_time(), time.perf_counter()
    bad = sum(await asyncio.gather(*(sender(k, per, f"m{tag}-", True)
                                     for k in range(concurrency))))
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    stored = -1.0
    registry = app.services.metrics.registry
    if registry is not None:
        from prometheus_client import generate_latest

        for family in text_string_to_metric_families(generate_latest(registry).decode()):
            for sample in family.samples:
                if sample.name == "streamzy_messages_stored_total":
                    stored = sample.value
    await app.services.close()
    await realtime.delivery.close()
    sent = per * concurrency
    if bad:
        raise SystemExit(f"{bad} messages were refused: the benchmark is not measuring sends")
    if metrics_on and stored != sent + 5 * concurrency:
        raise SystemExit(f"metrics on, but stored_total={stored} (expected {sent + 5 * concurrency})")
    return {"p50_ms": percentile(latencies, 0.50) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000,
            "msgs_per_s": sent / wall, "cpu_us_per_msg": cpu * 1e6 / sent}


async def run(rounds: int, count: int, concurrency: int, work: Path, fx: fixtures.Fixture,
              keys: fixtures.Secrets) -> dict[str, list[dict[str, float]]]:
    results: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    for i in range(rounds * 2):
        variant = "off" if i % 2 == 0 else "on"
        results[variant].append(await one_round(variant == "on", str(i), count, concurrency,
                                                work, fx, keys))
    return results


def seam_cost_us(calls: int = 200_000) -> dict[str, float]:
    """The metrics calls one message makes (worst case: a batch of one), timed alone:
    ack, stored, commit (size and latency), delivered. The bound the end-to-end figures
    cannot resolve below their noise."""
    from streamzy.metrics import Metrics, PrometheusMetrics

    out = {}
    for name, metrics in (("off", Metrics()), ("on", PrometheusMetrics())):
        started = time.perf_counter()
        for _ in range(calls):
            metrics.ack(0.003)
            metrics.messages_stored(1)
            metrics.commit(1, 0.001)
            metrics.message_delivered()
        out[name] = (time.perf_counter() - started) * 1e6 / calls
    return out


def summary(results: dict[str, list[dict[str, float]]]) -> str:
    keys = ("p50_ms", "p99_ms", "msgs_per_s", "cpu_us_per_msg")
    median = {v: {k: statistics.median(r[k] for r in rows) for k in keys}
              for v, rows in results.items()}
    lines = ["| metrics | ack p50 (ms) | ack p99 (ms) | throughput (msg/s) | CPU per message (µs) |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for variant in ("off", "on"):
        m = median[variant]
        lines.append(f"| {variant} | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} | "
                     f"{m['msgs_per_s']:.0f} | {m['cpu_us_per_msg']:.0f} |")
    ratio = {k: median["on"][k] / median["off"][k] for k in keys}
    lines.append(f"| on / off | {ratio['p50_ms']:.3f} | {ratio['p99_ms']:.3f} | "
                 f"{ratio['msgs_per_s']:.3f} | {ratio['cpu_us_per_msg']:.3f} |")
    lines += ["", "Every round (in the order run):", ""]
    order = [("off", r) for r in results["off"]]
    order = [x for pair in zip(order, [("on", r) for r in results["on"]], strict=True)
             for x in pair]
    for variant, row in order:
        lines.append(f"- {variant}: " + ", ".join(f"{k}={row[k]:.2f}" for k in keys))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6, help="rounds per variant")
    parser.add_argument("--count", type=int, default=2000, help="messages per round")
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="streamzy-metrics-") as tmp:
        keys = fixtures.Secrets()
        fx = fixtures.chat_fixture(Path(tmp), keys, rooms=1, per_room=args.concurrency)
        results = asyncio.run(run(args.rounds, args.count, args.concurrency, Path(tmp), fx,
                                  keys))
    print(f"rounds={args.rounds} per variant, count={args.count}, "
          f"concurrency={args.concurrency}, SQLite (FULL), no transport")
    print(summary(results))
    seam = seam_cost_us()
    print(f"\nThe metrics calls of one message alone (batch of one, 200,000 times): "
          f"off {seam['off']:.2f} µs, on {seam['on']:.2f} µs per message.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
