"""Scenario 7, flood: the others' latency while one client floods, with Streamzy's real
message limits (the other scenarios raise them out of the way); the limiter must refuse and
finally disconnect the flooder before the room feels it."""

from __future__ import annotations

from typing import Any

from benchmarks import fixtures
from benchmarks.harness.config import P99_LIMIT_MS, log
from benchmarks.harness.context import Context, chat_setup
from benchmarks.harness.knee import round_rate
from benchmarks.harness.loadgen import LoadGen, chat_config, spread_senders
from benchmarks.harness.processes import start_server
from benchmarks.harness.results import chat_report, chat_row, fmt, median_or_none, p99_of

TARGET = ("a flooding client keeps the others' p99 <= 100 ms", P99_LIMIT_MS)
N_SENDERS = 60  # at 20 msg/s each sends 20/min: inside the default 30/min limit
NOTE = (f"200 clients in one room, {N_SENDERS} of them sending (inside the default "
        "30 messages/min each), with Streamzy's default limits (30 messages/min, "
        "300 events/min, disconnect after 20 refusals). In the flood phase a 201st "
        "member sends 200 msg/s; its own receipts are not counted.")


def _default_limits() -> dict[str, str]:
    """The limits a deployment runs with (the other scenarios raise them out of the way)."""
    return {f"STREAMZY_{name.upper()}": str(info.default)
            for name, info in fixtures.Settings.model_fields.items()
            if name in ("rate_messages", "rate_socket_events", "flood_disconnect_after")}


def _flood_note(r: dict[str, Any]) -> str:
    f = r.get("flood") or {}
    return (f"flooder: {f.get('sent')} sent, acks {f.get('acks')}, "
            f"disconnected after {f.get('disconnectedAfter')} sends, "
            f"{f.get('delivered')} of its messages reached others" if f else "")


def run(ctx: Context) -> None:
    """Others' latency while one client floods, with Streamzy's real message limits."""
    rows: list[list[str]] = []
    summary: list[list[str]] = []
    raw: list[dict[str, Any]] = []
    for kind in ctx.servers:
        setup = chat_setup(ctx, f"flood-{kind}", rooms=1, per_room=201)
        clients = setup.fx.clients
        flooder = len(clients) - 1
        clients[flooder]["untracked"] = True
        knee = (ctx.knees.get("fanout") or {}).get(kind)
        rate = max(10.0, min(20.0, round_rate(knee / 2))) if knee else 20.0
        senders = spread_senders(1, 201, N_SENDERS)
        server = start_server("streamzy", kind, setup.work, {**setup.env, **_default_limits()})
        p99s: dict[str, list[float]] = {"quiet": [], "flood": []}
        try:
            # A fresh set of connections per repetition: the flooder is disconnected in each.
            for rep_no in range(1 if ctx.quick else 3):
                gen = LoadGen(chat_config(server, clients, senders, 3600), setup.work,
                              f"streamzy-{rep_no}", timeout=300)
                try:
                    gen.warm(5)
                    for label in ("quiet", "flood"):
                        ctx.settle()
                        phase: dict[str, Any] = {"rate": rate, "duration": ctx.duration,
                                                 "warmup": ctx.warmup, "drain": ctx.drain}
                        if label == "flood":
                            phase["flood"] = {"client": flooder, "rate": 200}
                        r = gen.phase(**phase)
                        raw.append({"server": kind, "phase": label, **r})
                        p99 = p99_of(r)
                        if p99 is not None:
                            p99s[label].append(p99)
                        note = _flood_note(r)
                        rows.append([*chat_row(kind, "streamzy" + (" +flood" if note else ""),
                                               r), note])
                        log(f"flood/{kind}/{label} @ {rate}/s: p99 {fmt(p99, '.1f')} {note}")
                finally:
                    gen.close()
        finally:
            server.stop()
        quiet = median_or_none(p99s["quiet"])
        flooded = max(p99s["flood"]) if p99s["flood"] else None
        summary.append([kind, fmt(rate, "g"), fmt(quiet, ".1f"), fmt(flooded, ".1f"),
                        ("met" if flooded <= TARGET[1] else "MISSED")
                        if flooded is not None else "n/a"])
    ctx.report.add("7. Flood: the others' latency while one client floods",
                   chat_report(rows, NOTE, ["server", "rate msg/s", "others' p99 quiet ms",
                                            "others' p99 during flood ms",
                                            f"target: {TARGET[0]}"], summary))
    ctx.report.data["flood"] = raw
