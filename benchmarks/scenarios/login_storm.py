"""Scenario 3, login storm: chat p99 in the 200-client room, quiet and while 20 clients log in
through the real form (bcrypt cost 12) in a loop; logins must not stall the event loop."""

from __future__ import annotations

from typing import Any

from benchmarks.harness.compare import chat_generators
from benchmarks.harness.config import log
from benchmarks.harness.context import Context, chat_setup, pair
from benchmarks.harness.knee import round_rate
from benchmarks.harness.loadgen import spread_senders
from benchmarks.harness.results import chat_report, chat_row, fmt, median_or_none, p99_of

TARGET = ("login storm raises chat p99 < 1.5x", 1.5)
NOTE = ("Chat at half of this run's Streamzy fan-out knee (10 msg/s when unknown); "
        "20 clients log in through the real form (GET /login + POST /login, bcrypt "
        "cost 12) in a loop for the whole window.")


def _chat_rate(ctx: Context, kind: str) -> float:
    """--rates first, else half this run's fan-out knee, else 10 msg/s."""
    knee = (ctx.knees.get("fanout") or {}).get(kind)
    return (ctx.rates[0] if ctx.rates else
            max(5.0, round_rate(knee / 2)) if knee else 10.0)


def run(ctx: Context) -> None:
    rows: list[list[str]] = []
    summary: list[list[str]] = []
    raw: list[dict[str, Any]] = []
    for kind in ctx.servers:
        log("login storm: hashing 20 passwords at bcrypt cost 12")
        setup = chat_setup(ctx, f"logins-{kind}", rooms=1, per_room=200, logins=20)
        rate = _chat_rate(ctx, kind)
        senders = spread_senders(1, 200, 20)
        p99s: dict[str, list[float]] = {"quiet": [], "storm": [], "baseline": []}
        with pair(ctx, kind, setup.env, setup.tag) as servers, \
                chat_generators(ctx, servers, setup.tag, setup.fx.clients, senders, 5) as gens:
            for _ in range(1 if ctx.quick else 3):
                for label, name, logins in (("quiet", "streamzy", []),
                                            ("storm", "streamzy", setup.fx.logins),
                                            ("baseline", "baseline", [])):
                    ctx.settle()
                    r = gens[name].phase(rate=rate, duration=ctx.duration, warmup=ctx.warmup,
                                         drain=ctx.drain, logins=logins)
                    raw.append({"server": kind, "app": name, "storm": bool(logins), **r})
                    p99 = p99_of(r)
                    if p99 is not None:
                        p99s[label].append(p99)
                    note = (f"{r.get('logins_ok', 0)} logins ok, "
                            f"{r.get('logins_failed', 0)} failed, login p50 "
                            f"{fmt((r.get('login_latency_ms') or {}).get('p50'), '.0f')} ms"
                            if logins else "")
                    rows.append([*chat_row(kind, name + (" +20 logins" if logins else ""), r),
                                 note])
                    log(f"logins/{kind}/{label} @ {rate}/s: p99 {fmt(p99, '.1f')} {note}")
        quiet = median_or_none(p99s["quiet"])
        storm = median_or_none(p99s["storm"])
        ratio = storm / quiet if quiet and storm else None
        summary.append([kind, fmt(rate, "g"), fmt(quiet, ".1f"), fmt(storm, ".1f"),
                        fmt(ratio, ".2f"),
                        ("met" if ratio < TARGET[1] else "MISSED") if ratio else "n/a"])
    ctx.report.add("3. Login storm: chat p99 with and without 20 concurrent logins",
                   chat_report(rows, NOTE, ["server", "rate msg/s", "p99 quiet ms",
                                            "p99 storm ms", "ratio", f"target: {TARGET[0]}"],
                               summary))
    ctx.report.data["logins"] = raw
