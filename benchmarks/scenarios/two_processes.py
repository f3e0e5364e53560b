"""Scenario 6, two processes over Redis: deliveries/s at the knee with one server process and
with two sharing rooms through Redis, for Streamzy and the baseline; it needs 4 cores to say
anything about scaling, so on fewer it is skipped unless forced (a smoke test)."""

from __future__ import annotations

from typing import Any

from benchmarks.harness.config import LOAD_CPU
from benchmarks.harness.context import ChatSetup, Context, chat_setup
from benchmarks.harness.knee import Knee
from benchmarks.harness.loadgen import LoadGen, chat_config, spread_senders
from benchmarks.harness.processes import redis_server, start_server
from benchmarks.harness.results import chat_report, chat_row, fmt, passes

TARGET = ("two processes over Redis >= 1.6x one process", 1.6)
APPS = ("streamzy", "baseline")


def _skip_text(cores: int) -> str:
    return (f"Skipped: this machine has {cores} cores. Two server processes, Redis and the load "
            "generator need 4 (the servers on cores 0 and 1, Redis on 2, the generator on 3); "
            "on 2 cores both processes would share the generator's core and the figure would "
            "say nothing about scaling. Run with `--redis --force-redis` to smoke-test it.")


def _measure(ctx: Context, kind: str, app: str, procs: int, setup: ChatSetup, env: dict[str, str],
             server_cpus: list[int], rows: list[list[str]], raw: list[dict[str, Any]]) -> None:
    """The knee of ``procs`` processes of ``app``, clients spread over them round-robin."""
    servers = [start_server(app, kind, setup.work, env, cpu=server_cpus[i])
               for i in range(procs)]
    try:
        clients = [{**c, "url": servers[i % procs].url} for i, c in enumerate(setup.fx.clients)]
        cfg = {**chat_config(servers[0], clients, spread_senders(1, 200, 20), 3600),
               "serverPids": [s.proc.pid for s in servers], "serverCpu": server_cpus[0]}
        gen = LoadGen(cfg, setup.work, f"{app}-{procs}", timeout=300)
        gen.warm(5)
        try:
            rate = 10 if ctx.quick else None
            knee = Knee(rate or 10, 1.6, 1.0 if ctx.quick else 0.1, 1 if ctx.quick else 8, 5000)
            best = None
            while not knee.done:
                assert knee.next is not None
                r = gen.phase(rate=knee.next, duration=ctx.duration, warmup=ctx.warmup,
                              drain=ctx.drain)
                ok = passes(r)
                knee.record(r["offered_rate"], ok)
                raw.append({"server": kind, "app": app, "processes": procs, **r})
                rows.append([*chat_row(kind, f"{app} x{procs}", r), ""])
                if ok and (best is None or r["delivered_per_s"] > best):
                    best = r["delivered_per_s"]
            ctx.knees.setdefault("redis", {})[f"{kind}/{app}/{procs}"] = best
        finally:
            gen.close()
    finally:
        for s in servers:
            s.stop()


def _summary(ctx: Context) -> list[list[str]]:
    summary = []
    for kind in ctx.servers:
        for app in APPS:
            one = ctx.knees.get("redis", {}).get(f"{kind}/{app}/1")
            two = ctx.knees.get("redis", {}).get(f"{kind}/{app}/2")
            ratio = two / one if one and two else None
            summary.append([kind, app, fmt(one, ".0f"), fmt(two, ".0f"), fmt(ratio, ".2f"),
                            ("met" if ratio >= TARGET[1] else "MISSED")
                            if ratio and app == "streamzy" else ""])
    return summary


def run(ctx: Context) -> None:
    cores = ctx.cores
    if cores < 4 and not ctx.force_redis:
        ctx.report.add("6. Two processes over Redis", _skip_text(cores))
        return
    server_cpus = [0, 1] if cores >= 4 else [0, 0]
    rows: list[list[str]] = []
    raw: list[dict[str, Any]] = []
    for kind in ctx.servers:
        tag = f"redis-{kind}"
        (ctx.workdir / tag).mkdir(parents=True, exist_ok=True)
        redis_proc, redis_url = redis_server(ctx.workdir / tag, 2 if cores >= 4 else LOAD_CPU)
        try:
            setup = chat_setup(ctx, tag, rooms=1, per_room=200, redis_url=redis_url)
            for app in APPS:
                env = setup.env if app == "streamzy" else {"BASELINE_REDIS_URL": redis_url}
                for procs in (1, 2):
                    _measure(ctx, kind, app, procs, setup, env, server_cpus, rows, raw)
        finally:
            redis_proc.terminate()
            redis_proc.wait(10)
    text = chat_report(rows, "", ["server", "app", "1 process deliv/s", "2 processes deliv/s",
                                  "ratio", f"target: {TARGET[0]}"], _summary(ctx))
    if cores < 4:
        text += "\n\nSMOKE TEST ONLY: fewer than 4 cores, both processes shared core 0."
    ctx.report.add("6. Two processes over Redis: deliveries/s at the knee", text)
    ctx.report.data["redis"] = raw
