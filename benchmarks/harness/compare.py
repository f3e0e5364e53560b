"""The same-run comparison with the bare python-socketio baseline: both apps stay connected
under the same ASGI server and are measured alternately, point by point, so a busy machine
hurts both alike; each one's knee is searched (or fixed rates are run) and set side by side."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks.harness.config import log
from benchmarks.harness.context import Context, chat_setup, pair
from benchmarks.harness.cores import wait_quiet
from benchmarks.harness.knee import Knee
from benchmarks.harness.loadgen import LoadGen, chat_config, spread_senders
from benchmarks.harness.processes import Server
from benchmarks.harness.results import chat_report, chat_row, fmt, noisy, passes

APPS_IN_TURN = ("streamzy", "baseline")


@contextmanager
def chat_generators(ctx: Context, servers: dict[str, Server], tag: str,
                    clients: list[dict[str, Any]], senders: list[int], warm: float,
                    announce: str | None = None) -> Iterator[dict[str, LoadGen]]:
    """One connected, warmed-up generator per app of the pair; all closed afterwards."""
    gens: dict[str, LoadGen] = {}
    try:
        for name in APPS_IN_TURN:
            gens[name] = LoadGen(chat_config(servers[name], clients, senders, 7200),
                                 ctx.workdir / tag, name, timeout=300)
            hello = gens[name].hello
            gens[name].warm(warm)
            if announce:
                log(f"{announce}/{name}: {hello.get('connected')} connected in "
                    f"{hello.get('connectSeconds', 0):.1f} s, join errors "
                    f"{hello.get('join_errors')}")
        yield gens
    finally:
        for gen in gens.values():
            gen.close()


def _point(ctx: Context, gen: LoadGen, rate: float) -> dict[str, Any]:
    return gen.phase(rate=rate, duration=ctx.duration, warmup=ctx.warmup, drain=ctx.drain)


def _measure(ctx: Context, scenario: str, kind: str, name: str, gen: LoadGen, rate: float,
             knee: Knee, rows: list[list[str]]) -> dict[str, Any]:
    """One point, repeated once if it failed on a noisy machine; recorded in ``knee``."""
    ctx.settle()
    r = _point(ctx, gen, rate)
    ok = passes(r)
    if not ok and noisy(r) and rate not in knee.retried:
        knee.retried.add(rate)
        log(f"{name} @ {rate}/s failed on a noisy machine: repeating")
        rows.append([*chat_row(kind, name, r), "(noisy, repeated)"])
        wait_quiet(max(ctx.wait_quiet, 30))
        r = _point(ctx, gen, rate)
        ok = passes(r)
    knee.record(rate, ok)
    rows.append([*chat_row(kind, name, r), ""])
    lat = r.get("latency_ms") or {}
    log(f"{scenario}/{kind}/{name} @ {rate}/s: deliv/s "
        f"{r.get('delivered_per_s', 0):.0f} p99 {fmt(lat.get('p99'), '.1f')} "
        f"lost {r.get('lost')} cpu {fmt(r.get('server_cpu'), '.2f')} "
        f"gen {fmt(r.get('loadgen_cpu'), '.2f')} -> "
        f"{'pass' if ok else 'FAIL'}")
    return r


def _alternate(ctx: Context, scenario: str, kind: str, servers: dict[str, Server],
               gens: dict[str, LoadGen], knees: dict[str, Knee], fixed: list[float] | None,
               rows: list[list[str]], raw: list[dict[str, Any]]) -> None:
    """Streamzy, baseline, Streamzy, ... until both knees are found (or the rates run out)."""
    plan = {name: list(fixed) for name in gens} if fixed else {}
    while True:
        progressed = False
        for name in APPS_IN_TURN:
            knee = knees[name]
            if fixed:
                if not plan[name]:
                    continue
                rate = plan[name].pop(0)
            elif knee.done or knee.next is None:
                continue
            else:
                rate = knee.next
            progressed = True
            r = _measure(ctx, scenario, kind, name, gens[name], rate, knee, rows)
            raw.append({"server": kind, "app": name, **r})
            if not all(s.alive() for s in servers.values()):
                raise RuntimeError("a server died; see logs in " + str(ctx.workdir))
        if not progressed:
            break


def _us_per_delivery(raw: list[dict[str, Any]], kind: str, name: str) -> float:
    """Median server CPU per delivery over the points where the server was really busy."""
    return statistics.median(
        [x["server_cpu_us_per_delivery"] for x in raw
         if x["server"] == kind and x["app"] == name and x.get("server_cpu_us_per_delivery")
         and x.get("server_cpu", 0) > 0.2] or [0])


def sweep(ctx: Context, scenario: str, title: str, target: tuple[str, float], *, rooms: int,
          per_room: int, n_senders: int, start: float, factor: float, max_rate: float,
          quick_rates: list[float]) -> None:
    """Knees of Streamzy and the baseline for ``rooms`` rooms of ``per_room``, and the ratio."""
    rows: list[list[str]] = []
    summary_rows: list[list[str]] = []
    raw: list[dict[str, Any]] = []
    fixed = ctx.rates or (quick_rates if ctx.quick else None)
    for kind in ctx.servers:
        setup = chat_setup(ctx, f"{scenario}-{kind}", rooms=rooms, per_room=per_room)
        senders = spread_senders(rooms, per_room, n_senders)
        knees = {name: Knee(start, factor, 0.08, 10, max_rate) for name in APPS_IN_TURN}
        with pair(ctx, kind, setup.env, setup.tag) as servers, \
                chat_generators(ctx, servers, setup.tag, setup.fx.clients, senders,
                                min(start, 20), announce=f"{scenario}/{kind}") as gens:
            _alternate(ctx, scenario, kind, servers, gens, knees, fixed, rows, raw)
        sk = knees["streamzy"].lo
        bk = knees["baseline"].lo
        ctx.knees.setdefault(scenario, {})[kind] = sk
        ratio = (sk / bk) if sk and bk else None
        per = {name: _us_per_delivery(raw, kind, name) for name in APPS_IN_TURN}
        summary_rows.append([
            kind, fmt(sk, "g"), fmt(bk, "g"), fmt(ratio, ".2f"),
            fmt(per["streamzy"], ".0f"), fmt(per["baseline"], ".0f"),
            fmt(per["baseline"] / per["streamzy"] if per["streamzy"] else None, ".2f"),
            "n/a (fixed rates: no knee search)" if fixed
            else ("met" if ratio >= target[1] else "MISSED") if ratio is not None else "n/a"])
    note = ("Knee = highest offered rate with p99 <= 100 ms, zero loss, no errors"
            + (" (fixed rates: no knee search)" if ctx.quick or ctx.rates else
               ", found by growing the rate 1.6x until a point fails, then bisecting")
            + ". noise = other processes' share of core 0 / host steal on core 0 / "
            "other processes' share of core 1 during the window; ! marks a noisy "
            "point (a failed noisy point is repeated once).")
    ctx.report.add(title, chat_report(rows, note, [
        "server", "Streamzy knee msg/s", "baseline knee msg/s", "ratio", "Streamzy us/deliv",
        "baseline us/deliv", "CPU-efficiency ratio", f"target: {target[0]}"], summary_rows))
    ctx.report.data[scenario] = raw
