"""Scenario 9, large room: thousands of signed-in users in ONE room, where whatever a join
or a leave tells the room (presence) grows with the room. Three parts, each against the bare
python-socketio baseline (its join enters the room, nothing more) in the same run: a join
storm (how long until N users are in, and what it costs the server), RSS with 10,000 idle
members, and delivery latency from one sender to 2,000 members."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.harness.compare import APPS_IN_TURN
from benchmarks.harness.config import LOAD_CPU, SERVER_CPU, log
from benchmarks.harness.context import Context, chat_setup, pair
from benchmarks.harness.loadgen import run_loadgen_once
from benchmarks.harness.processes import Server, wait_idle
from benchmarks.harness.results import chat_report, chat_row, fmt, table

JOIN_TARGETS = {2_000: 20.0, 5_000: 60.0}  # clients -> seconds until all are in the room
JOIN_TARGET = "all joined: 2,000 in 20 s, 5,000 in 60 s"
CPU_TARGET = ("join-storm server CPU <= 1.5x baseline", 1.5)
RSS_TARGET = ("10,000 idle members < 1 GiB RSS", 1024 ** 3)
P99_TARGET = ("delivery p99 < 500 ms", 500.0)
CONCURRENCY = 200  # clients connecting (and then joining) at a time
# Per-client limits for a server busy with 200 joins at once: a client that runs past one
# counts as an error; the generator's hard deadline still ends every run.
TIMEOUTS = {"handshakeTimeoutMs": 30_000, "connectTimeoutMs": 60_000, "joinTimeoutMs": 60_000}
JOIN_NOTE = (f"Every client is a signed-in user with its own session; {CONCURRENCY} connect "
             "(websocket, Socket.IO connect, `join`) at a time, all into one room, on a fresh "
             "server pair and database for each size. `all in s` = first connect to the last "
             "join ack; `join p50/p99` = one client's connect start to its join ack. `CPU s` = "
             "server process tree (from /proc) from the first connect until it was quiet again "
             "after the last ack (`settle s`: what the joins set off, such as presence, "
             "included); `CPU ms/join` = that per joined client.")
IDLE_NOTE = ("Every socket is a signed-in user joined to the one room. RSS of the server "
             "process tree after the joins settled (`settle s`) and the hold. `RSS at 10,000` "
             "= RSS before + KB/socket x 10,000 (what the target judges, so the quick size "
             "is judged too); the target also needs every socket alive and joined.")
DELIVERY_NOTE = ("One member sends 1 msg/s (200-byte text) once the joins settled; latency "
                 "is send to receipt over every delivery of every message (the sender's own "
                 "included). `ok` here: p99 < 500 ms, nothing lost or duplicated, no errors; "
                 "the target also needs every member joined.")


@dataclass(frozen=True)
class Sizes:
    storms: tuple[int, ...]  # join storms, one fresh server pair each
    idle: int
    hold: float
    members: int
    seconds: float  # of delivery
    settle_quiet: float  # the longest wait for a server to go quiet after joins


QUICK = Sizes((200, 400), 1_000, 3.0, 300, 5.0, 60.0)
FULL = Sizes((1_000, 2_000, 5_000), 10_000, 10.0, 2_000, 20.0, 120.0)


def _measure(ctx: Context, servers: dict[str, Server], name: str, work: Path, tag: str,
             sizes: Sizes, cfg: dict[str, Any]) -> dict[str, Any]:
    """One generator run against ``servers[name]``, started once both servers are quiet
    (the other app's clients and what their leaving set off are gone)."""
    ctx.settle()
    waited = wait_idle(list(servers.values()), sizes.settle_quiet)
    server = servers[name]
    deadline = 300 + 0.2 * len(cfg["clients"])  # a bound, far above any expected run
    r = run_loadgen_once({"url": server.url, "serverPids": [server.proc.pid],
                          "serverCpu": SERVER_CPU, "loadCpu": LOAD_CPU,
                          "connectConcurrency": CONCURRENCY, "settle": 1.0,
                          "settleQuiet": sizes.settle_quiet, "deadline": deadline,
                          **TIMEOUTS, **cfg}, work, tag, timeout=deadline + 60)
    if not server.alive():
        raise RuntimeError(f"{name} died; see logs in {work}")
    return {"app": name, "waited_quiet_s": waited, **r}


def _storm_cpu(r: dict[str, Any]) -> float | None:
    if r.get("connect_server_cpu_s") is None:
        return None
    return r["connect_server_cpu_s"] + r.get("settle_server_cpu_s", 0)


def _joined(r: dict[str, Any]) -> int:
    return int((r.get("join_ms") or {}).get("n") or 0)


def _codes(r: dict[str, Any]) -> str:
    codes = (r.get("errors") or {}).get("errorCodes") or r.get("error_codes") or {}
    return ", ".join(f"{code} {n}" for code, n in sorted(codes.items())) or "-"


def _ratio(a: float | None, b: float | None) -> str:
    return fmt(a / b if a is not None and b else None, ".2f")


def _join_row(kind: str, n: int, r: dict[str, Any]) -> list[str]:
    lat = r.get("join_ms") or {}
    cpu = _storm_cpu(r)
    joined = _joined(r)
    return [kind, r["app"], f"{n:,}", str(r.get("connected", "-")), str(joined),
            fmt(r.get("connectSeconds"), ".1f"), fmt(lat.get("p50"), ".0f"),
            fmt(lat.get("p99"), ".0f"), str(r.get("connect_errors", "-")),
            str(r.get("join_errors", "-")), str((r.get("errors") or {}).get("disconnects", "-")),
            _codes(r), fmt(r.get("settle_s"), ".1f"), fmt(cpu, ".2f"),
            fmt(cpu * 1000 / joined if cpu is not None and joined else None, ".2f")]


def _join_summary(kind: str, n: int, s: dict[str, Any], b: dict[str, Any]) -> list[str]:
    limit = JOIN_TARGETS.get(n)
    all_in = _joined(s) == n and s.get("connectSeconds") is not None
    met_time = ("-" if limit is None else
                "met" if all_in and s["connectSeconds"] <= limit else "MISSED")
    cpu_s, cpu_b = _storm_cpu(s), _storm_cpu(b)
    met_cpu = ("met" if cpu_s <= CPU_TARGET[1] * cpu_b else "MISSED") \
        if cpu_s is not None and cpu_b else "n/a"
    return [kind, f"{n:,}", fmt(s.get("connectSeconds"), ".1f"),
            fmt(b.get("connectSeconds"), ".1f"),
            _ratio(s.get("connectSeconds"), b.get("connectSeconds")), fmt(cpu_s, ".2f"),
            fmt(cpu_b, ".2f"), _ratio(cpu_s, cpu_b), met_time, met_cpu]


def _join_storms(ctx: Context, kind: str, sizes: Sizes, rows: list[list[str]],
                 summary: list[list[str]], raw: list[dict[str, Any]]) -> None:
    for n in sizes.storms:
        setup = chat_setup(ctx, f"large-join-{kind}-{n}", rooms=1, per_room=n)
        runs: dict[str, dict[str, Any]] = {}
        with pair(ctx, kind, setup.env, setup.tag) as servers:
            for name in APPS_IN_TURN:
                r = _measure(ctx, servers, name, setup.work, f"join-{name}", sizes,
                             {"mode": "join", "clients": setup.fx.clients})
                runs[name] = r
                raw.append({"server": kind, "clients": n, **r})
                rows.append(_join_row(kind, n, r))
                log(f"large-room/join/{kind}/{name}: {_joined(r)}/{n} joined in "
                    f"{fmt(r.get('connectSeconds'), '.1f')} s, server CPU "
                    f"{fmt(_storm_cpu(r), '.2f')} s, errors {_codes(r)}")
        summary.append(_join_summary(kind, n, runs["streamzy"], runs["baseline"]))


def _per_socket(r: dict[str, Any]) -> float | None:
    alive = r.get("alive_after_hold") or 0
    return (r.get("server_rss", 0) - r.get("server_rss_before", 0)) / alive if alive else None


def _at_10k(r: dict[str, Any]) -> float | None:
    per = _per_socket(r)
    return r.get("server_rss_before", 0) + per * 10_000 if per is not None else None


def _both(ctx: Context, kind: str, part: str, n: int, sizes: Sizes,
          config: dict[str, Any], raw: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``n`` members of one room on a fresh server pair: Streamzy's and the baseline's run of
    the generator ``config``, in turn."""
    setup = chat_setup(ctx, f"large-{part}-{kind}", rooms=1, per_room=n)
    runs: dict[str, dict[str, Any]] = {}
    with pair(ctx, kind, setup.env, setup.tag) as servers:
        for name in APPS_IN_TURN:
            r = _measure(ctx, servers, name, setup.work, f"{part}-{name}", sizes,
                         {**config, "clients": setup.fx.clients})
            runs[name] = r
            raw.append({"server": kind, **r})
    return runs


def _idle(ctx: Context, kind: str, sizes: Sizes, rows: list[list[str]],
          summary: list[list[str]], raw: list[dict[str, Any]]) -> None:
    n = sizes.idle
    runs = _both(ctx, kind, "idle", n, sizes, {"mode": "idle", "hold": sizes.hold}, raw)
    for name, r in runs.items():
        per = _per_socket(r)
        rows.append([kind, name, f"{n:,}", str(r.get("connected", "-")),
                     str(r.get("alive_after_hold", "-")), fmt(r.get("connectSeconds"), ".1f"),
                     fmt(r.get("settle_s"), ".1f"),
                     fmt(r.get("server_rss_before", 0) / 2 ** 20, ".0f"),
                     fmt(r.get("server_rss", 0) / 2 ** 20, ".0f"),
                     fmt(per / 1024 if per is not None else None, ".1f"),
                     str(r.get("connect_errors", "-")), str(r.get("join_errors", "-")),
                     _codes(r)])
        log(f"large-room/idle/{kind}/{name}: {r.get('alive_after_hold', 0)} alive, RSS "
            f"{r.get('server_rss', 0) / 2 ** 20:.0f} MB")
    s, b = runs["streamzy"], runs["baseline"]
    at = _at_10k(s)
    every = s.get("alive_after_hold") == n and _joined(s) == n
    met = "met" if at is not None and at < RSS_TARGET[1] and every else "MISSED"
    per_s, per_b = _per_socket(s), _per_socket(b)
    summary.append([kind, f"{n:,}", fmt(s.get("server_rss", 0) / 2 ** 20, ".0f"),
                    fmt(b.get("server_rss", 0) / 2 ** 20, ".0f"),
                    _ratio(s.get("server_rss"), b.get("server_rss")),
                    fmt(per_s / 1024 if per_s is not None else None, ".1f"),
                    fmt(per_b / 1024 if per_b is not None else None, ".1f"), _ratio(per_s, per_b),
                    fmt(at / 2 ** 20 if at is not None else None, ".0f"), met])


def _delivered(r: dict[str, Any]) -> bool:
    """This scenario's `ok`: p99 under the target, nothing lost or duplicated, no errors."""
    p99 = (r.get("latency_ms") or {}).get("p99")
    e = r.get("errors") or {}
    errors = sum(e.get(k, 0) for k in ("ackErrors", "ackTimeouts", "sendErrors"))
    return (p99 is not None and p99 < P99_TARGET[1] and r.get("lost") == 0
            and r.get("duplicates") == 0 and errors + r.get("disconnects", 0) == 0)


def _delivery(ctx: Context, kind: str, sizes: Sizes, rows: list[list[str]],
              summary: list[list[str]], raw: list[dict[str, Any]]) -> None:
    n = sizes.members
    # the last message is due at exactly `seconds`: +0.5 s sends it
    runs = _both(ctx, kind, "delivery", n, sizes,
                 {"mode": "chat", "senders": [0], "rate": 1.0, "duration": sizes.seconds + 0.5,
                  "warmup": 0, "drain": 5.0, "textBytes": 200}, raw)
    for name, r in runs.items():
        rows.append([*chat_row(kind, name, r)[:-1], "yes" if _delivered(r) else "no",
                     f"{_joined(r)}/{n} joined in {fmt(r.get('connectSeconds'), '.1f')} s"
                     + (f"; {r['failed']}" if r.get("failed") else "")])
        lat = r.get("latency_ms") or {}
        log(f"large-room/delivery/{kind}/{name}: p99 {fmt(lat.get('p99'), '.1f')} ms, "
            f"lost {r.get('lost')}, duplicates {r.get('duplicates')}")
    s, b = runs["streamzy"], runs["baseline"]
    lat_s, lat_b = s.get("latency_ms") or {}, b.get("latency_ms") or {}
    p99 = lat_s.get("p99")
    met = "met" if _delivered(s) and _joined(s) == n else "MISSED"
    summary.append([kind, f"{n:,}", fmt(lat_s.get("p50"), ".1f"), fmt(p99, ".1f"),
                    fmt(lat_s.get("max"), ".0f"), fmt(lat_b.get("p99"), ".1f"),
                    _ratio(p99, lat_b.get("p99")), f"{s.get('lost', '-')}/{s.get('duplicates', '-')}",
                    met])


def run(ctx: Context) -> None:
    sizes = QUICK if ctx.quick else FULL
    parts = ("join", "idle", "delivery")
    rows: dict[str, list[list[str]]] = {p: [] for p in parts}
    summary: dict[str, list[list[str]]] = {p: [] for p in parts}
    raw: dict[str, list[dict[str, Any]]] = {p: [] for p in parts}
    for kind in ctx.servers:
        _join_storms(ctx, kind, sizes, rows["join"], summary["join"], raw["join"])
        _idle(ctx, kind, sizes, rows["idle"], summary["idle"], raw["idle"])
        _delivery(ctx, kind, sizes, rows["delivery"], summary["delivery"], raw["delivery"])
    storms = " / ".join(f"{n:,}" for n in sizes.storms)
    ctx.report.add(f"9. Large room (1/3): join storms of {storms} users into one room", "\n\n".join([
        table(["server", "app", "clients", "connected", "joined", "all in s", "join p50 ms",
               "join p99 ms", "connect err", "join err", "disconn", "error codes", "settle s",
               "CPU s", "CPU ms/join"], rows["join"]), JOIN_NOTE,
        table(["server", "clients", "Streamzy all in s", "baseline all in s", "ratio",
               "Streamzy CPU s", "baseline CPU s", "CPU ratio", f"target: {JOIN_TARGET}",
               f"target: {CPU_TARGET[0]}"], summary["join"])]))
    ctx.report.add(f"9. Large room (2/3): {sizes.idle:,} idle members of one room", "\n\n".join([
        table(["server", "app", "sockets", "connected", "alive after hold", "connect s",
               "settle s", "RSS before MB", "RSS after MB", "KB per socket", "connect err",
               "join err", "error codes"], rows["idle"]),
        IDLE_NOTE,
        table(["server", "sockets", "Streamzy RSS MB", "baseline RSS MB", "ratio",
               "Streamzy KB/socket", "baseline KB/socket", "ratio", "Streamzy RSS at 10,000 MB",
               f"target: {RSS_TARGET[0]}"], summary["idle"])]))
    ctx.report.add(f"9. Large room (3/3): delivery to {sizes.members:,} members, 1 msg/s for "
                   f"{sizes.seconds:g} s", chat_report(rows["delivery"], DELIVERY_NOTE, [
                       "server", "members", "Streamzy p50 ms", "Streamzy p99 ms",
                       "Streamzy max ms", "baseline p99 ms", "p99 ratio", "lost/dup",
                       f"target: {P99_TARGET[0]}"], summary["delivery"]))
    ctx.report.data["large-room"] = raw
