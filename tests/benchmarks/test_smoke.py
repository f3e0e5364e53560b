"""Smoke test of benchmarks/: a refactor of the benchmarks, or of the Streamzy code they
drive, must not break them silently (nobody runs a 20-minute benchmark to find out).

Cheap checks run always: every benchmark module imports, ``run.py --help`` lists every
scenario, every command in benchmarks/README.md still parses, the knee search and the
tables behave. Marked ``slow`` (they start real servers): the benchmark's own database
and sessions let a Python Socket.IO client chat through the harness's Streamzy and
baseline servers (no Node needed), and the cheapest real scenario (fan-out, quick size,
one server, 1 s per point: ~20 s) runs end to end when the Node load generator is
installed (``cd benchmarks/node && npm ci``), else it is skipped saying so.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import socketio

from benchmarks import fixtures
from benchmarks.harness.context import Context, chat_setup, pair
from benchmarks.harness.knee import Knee
from benchmarks.harness.loadgen import installed as loadgen_installed
from benchmarks.harness.loadgen import spread_senders
from benchmarks.harness.results import CHAT_COLUMNS, Report, chat_report, table

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
# The scenario flags, in the order of --help and of a run (numbered 1-9 in their help).
SCENARIO_FLAGS = ["fanout", "rooms", "logins", "idle", "history", "redis", "flood", "waves",
                  "large-room"]
OPTIONS = ["--quick", "--all", "--loop", "--force-redis", "--servers", "--duration", "--rates",
           "--json", "--markdown", "--keep", "--wait-quiet", "--streamzy-app", "--baseline-app"]


def benchmark_modules() -> list[str]:
    """Every Python module under benchmarks/ (new ones are covered without editing this)."""
    names = []
    for path in sorted(BENCHMARKS.rglob("*.py")):
        if "node_modules" in path.parts:
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def benchmark_env(tmp_path: Path) -> dict[str, str]:
    """What a benchmark server gets: STREAMZY_* for a throwaway database, the repo importable."""
    keys = fixtures.Secrets()
    env = fixtures.server_env(f"sqlite+aiosqlite:///{tmp_path / 'import.db'}", keys, tmp_path)
    # experiments/previous.py imports Streamzy from this tree (run.py --baseline-rev sets it)
    return {**os.environ, **env, "PYTHONPATH": str(ROOT), "STREAMZY_PREVIOUS_TREE": str(ROOT)}


def test_every_benchmark_module_imports(tmp_path: Path) -> None:
    modules = benchmark_modules()
    assert {"benchmarks.run", "benchmarks.harness.compare", "benchmarks.scenarios.fanout",
            "benchmarks.profile", "benchmarks.micro_send",
            "benchmarks.experiments.streamzy_diag"} <= set(modules)
    # In a fresh interpreter configured like a benchmark server: some modules build the app
    # at import (experiments/streamzy_diag.py), and the working directory has no .env.
    code = ("import importlib, json, sys, traceback\nfailed = {}\n"
            "for name in sys.argv[1:]:\n"
            "    try:\n        importlib.import_module(name)\n"
            "    except BaseException:\n        failed[name] = traceback.format_exc()\n"
            "print(json.dumps(failed))\n")
    done = subprocess.run([sys.executable, "-c", code, *modules], cwd=tmp_path,
                          env=benchmark_env(tmp_path), capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    failed = json.loads(done.stdout.strip().splitlines()[-1])
    assert failed == {}, "\n".join(f"{name}:\n{tb}" for name, tb in failed.items())


@pytest.mark.parametrize("command", [["benchmarks/run.py"], ["-m", "benchmarks.run"]],
                         ids=["script", "module"])
def test_help_lists_every_scenario_and_option(command: list[str]) -> None:
    done = subprocess.run([sys.executable, *command, "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    flags = re.findall(r"^  (--[a-z-]+)", done.stdout, re.MULTILINE)
    scenario_flags = [f for f in flags if f.removeprefix("--") in SCENARIO_FLAGS]
    assert scenario_flags == [f"--{name}" for name in SCENARIO_FLAGS]
    for number, name in enumerate(SCENARIO_FLAGS, 1):
        assert re.search(rf"^  --{name}\s+{number}\. ", done.stdout, re.MULTILINE), name
    assert set(OPTIONS) <= set(flags)


def test_registry_matches_the_command_line() -> None:
    from benchmarks.run import parser
    from benchmarks.scenarios import SCENARIOS

    assert list(SCENARIOS) == SCENARIO_FLAGS
    assert all(callable(s.run) for s in SCENARIOS.values())
    args = parser().parse_args(["--fanout", "--flood"])
    assert [n for n in SCENARIOS if getattr(args, n)] == ["fanout", "flood"]


def test_a_run_without_scenarios_is_a_usage_error() -> None:
    done = subprocess.run([sys.executable, "benchmarks/run.py"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "choose --quick, --all or one or more scenarios" in done.stderr


def test_readme_commands_still_parse() -> None:
    from benchmarks.run import parser

    readme = (BENCHMARKS / "README.md").read_text()
    commands = re.findall(r"^python benchmarks/run\.py (.+?)(?:\s+#.*)?$", readme, re.MULTILINE)
    assert len(commands) >= 7
    for line in commands:
        parser().parse_args(shlex.split(line))  # a usage error exits (SystemExit: 2)
    # the README's list of options names only options that exist
    options = re.findall(r"^(--[a-z-]+) ", readme, re.MULTILINE)
    assert set(options) <= set(OPTIONS) and len(options) >= 5


def test_knee_search_grows_then_bisects_to_the_knee() -> None:
    knee = Knee(10, 1.6, 0.08, 20, 2000)
    offered = []
    while not knee.done:
        assert knee.next is not None
        offered.append(knee.next)
        knee.record(knee.next, knee.next <= 73)
    assert offered[:6] == [10, 16, 26, 42, 67, 105]  # x1.6, rounded, until 105 fails
    assert knee.lo is not None and knee.hi is not None
    assert knee.lo <= 73 < knee.hi and (knee.hi - knee.lo) / knee.lo <= 0.08


def test_chat_report_layout() -> None:
    row = ["hypercorn", "streamzy", *["1"] * (len(CHAT_COLUMNS) - 2), ""]
    text = chat_report([row], "How to read it.", ["server", "target"], [["hypercorn", "met"]])
    first, note, summary = text.split("\n\n")
    assert first.splitlines()[0].startswith("| server    | app      | offered/s |")
    assert first.splitlines()[1].startswith("|-----------|----------|")
    assert note == "How to read it."
    assert summary == table(["server", "target"], [["hypercorn", "met"]])
    assert chat_report([row], "", ["s"], [["x"]]).count("\n\n") == 1
    assert spread_senders(3, 10, 4) == [0, 10, 20, 1]


# ---- slow: real servers ------------------------------------------------------------------

def _need_pinning() -> None:
    if not shutil.which("taskset"):
        pytest.skip("taskset not installed: the harness pins servers with it (util-linux)")
    if not {0, 1} <= os.sched_getaffinity(0):
        pytest.skip("the harness needs CPUs 0 and 1 (server on 0, load on 1)")


async def _chat(url: str, cookie: str, room: int) -> tuple[Any, Any, list[dict[str, Any]]]:
    """Sign in with the benchmark's cookie like the load generator, join, send one message."""
    received: list[dict[str, Any]] = []
    got = asyncio.Event()
    client = socketio.AsyncClient(reconnection=False)

    @client.on("message")
    async def on_message(data: dict[str, Any]) -> None:
        received.append(data)
        got.set()

    await client.connect(url, headers={"Cookie": f"streamzy_session={cookie}"},
                         transports=["websocket"], wait_timeout=10)
    try:
        joined = await client.call("join", {"room": room}, timeout=10)
        ack = await client.call("message", {"room": room, "client_msg_id": "smoke-1",
                                            "text": "x" * 200}, timeout=10)
        await asyncio.wait_for(got.wait(), 10)
    finally:
        await client.disconnect()
    return joined, ack, received


@pytest.mark.slow
def test_benchmark_users_chat_through_the_harness_servers(tmp_path: Path) -> None:
    """Python only: the fixture's sessions are accepted and both apps answer the protocol."""
    _need_pinning()
    ctx = Context(quick=True, servers=["hypercorn"], workdir=tmp_path, report=Report(),
                  duration=1.0, warmup=0.5, drain=1.0)
    setup = chat_setup(ctx, "smoke", rooms=1, per_room=2)
    room = setup.fx.rooms[0]
    with pair(ctx, "hypercorn", setup.env, setup.tag) as servers:
        for name, server in servers.items():
            joined, ack, received = asyncio.run(
                _chat(server.url, setup.fx.clients[0]["cookie"], room))
            assert joined["ok"], (name, joined)
            assert ack["ok"] and ack["seq"] == 1, (name, ack)
            assert [m["client_msg_id"] for m in received] == ["smoke-1"], name
            assert server.alive(), name
    assert not any(s.alive() for s in servers.values())


@pytest.mark.slow
def test_cheapest_scenario_runs_end_to_end(tmp_path: Path) -> None:
    """Fan-out at the quick size on Hypercorn, 3 s per point (1 s measured nothing on a busy
    machine once): the real runner, real output."""
    _need_pinning()
    if not shutil.which("node"):
        pytest.skip("node not installed: the load generator is benchmarks/node/loadgen.js")
    if not loadgen_installed():
        pytest.skip("load generator dependencies missing: cd benchmarks/node && npm ci "
                    "(the runner would install them itself; a test does not download)")
    out = tmp_path / "out.json"
    done = subprocess.run([sys.executable, "benchmarks/run.py", "--fanout", "--quick",
                           "--servers", "hypercorn", "--duration", "3", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = done.stdout
    assert text.startswith("Streamzy benchmark (")
    assert "quick mode, 3 s per point, uvloop event loop." in text.splitlines()[0]
    assert "\n### 1. Fan-out: 200 clients in one room, 20 senders\n" in text
    assert "| server    | app      | offered/s | sent/s | deliv/s |" in text
    assert "| Streamzy knee msg/s | baseline knee msg/s | ratio |" in text
    assert "n/a (fixed rates: no knee search)" in text
    assert re.search(r"\nTotal time \d+ s\.\n$", text)
    results = json.loads(out.read_text())["results"]["fanout"]
    assert sorted(r["app"] for r in results) == ["baseline", "streamzy"]
    for r in results:
        # correctness, not speed: every acknowledged message reached all 200 members once
        assert r["offered_rate"] == 20 and r["delivered_per_s"] > 0, r
        assert r["lost"] == 0 and r["duplicates"] == 0, r


@pytest.mark.slow
def test_waves_scenario_leaves_no_per_connection_state(tmp_path: Path) -> None:
    """--waves at its smallest (2 waves of 20 sockets with permessage-deflate, 1 s pause, no
    trim-policy server: ~25 s): the real runner and probe, every socket connected and acked,
    and after each wave no per-connection entry left in python-socketio or Streamzy."""
    _need_pinning()
    if not shutil.which("node") or not loadgen_installed():
        pytest.skip("the load generator needs node and `cd benchmarks/node && npm ci`")
    out = tmp_path / "out.json"
    env = {**os.environ, "WAVES_SOCKETS": "20", "WAVES_COUNT": "2", "WAVES_PAUSE": "1",
           "WAVES_DEFLATE": "1", "WAVES_AUTOTRIM": "0"}
    done = subprocess.run([sys.executable, "benchmarks/run.py", "--waves", "--servers",
                           "hypercorn", "--json", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "\n### 8. Waves: 2 waves of 20 sockets, then 1 s with 3 left\n" in done.stdout
    assert "| growth after wave 1 MB | after malloc_trim MB |" in done.stdout
    results = json.loads(out.read_text())["results"]["waves"]
    waves = [r for r in results if r["wave"] != "pause"]
    assert sorted({(r["compression"], r["app"]) for r in waves}) == [
        ("deflate", "baseline"), ("deflate", "streamzy")]
    for r in waves:
        assert r["connect"]["live"] == 20 and r["send"]["acked"] == 20, r["connect"]
        if r["app"] == "streamzy":
            kept = 3 if r["wave"] == 2 else 0
            sizes = {k: v for k, v in r["probe"].items() if k.startswith("ns.")}
            assert sizes["ns.connections"] == kept and sizes["ns.budgets"] == kept, sizes
            assert r["probe"]["manager.room_members"] == 4 * kept, r["probe"]
    paused = [r for r in results if r["wave"] == "pause"]
    assert len(paused) == 2 and all(r["trim"]["rss_after"] > 0 for r in paused)


@pytest.mark.slow
def test_join_mode_reports_join_latency_and_server_cpu(tmp_path: Path) -> None:
    """The generator's join mode as scenario 9 drives it, at 20 clients on Hypercorn (~15 s):
    every client joined, per-client join latency and the server's CPU for the storm."""
    _need_pinning()
    if not shutil.which("node") or not loadgen_installed():
        pytest.skip("the load generator needs node and `cd benchmarks/node && npm ci`")
    from benchmarks.scenarios.large_room import QUICK, _measure

    ctx = Context(quick=True, servers=["hypercorn"], workdir=tmp_path, report=Report(),
                  duration=1.0, warmup=0.5, drain=1.0)
    setup = chat_setup(ctx, "large", rooms=1, per_room=20)
    with pair(ctx, "hypercorn", setup.env, setup.tag) as servers:
        for name in servers:
            r = _measure(ctx, servers, name, setup.work, f"join-{name}", QUICK,
                         {"mode": "join", "clients": setup.fx.clients})
            assert r["connected"] == 20 and r["connect_errors"] == 0, (name, r)
            assert r["join_errors"] == 0 and r["join_ms"]["n"] == 20, (name, r)
            assert 0 < r["join_ms"]["p50"] <= r["join_ms"]["p99"] <= r["join_ms"]["max"], r
            assert r["connect_server_cpu_s"] >= 0 and r["settle_s"] >= 1.0, (name, r)


def test_micro_send_drives_the_real_handler_through_public_seams() -> None:
    """micro_send adopts transport-less connections and sends through the namespace's
    trigger_event; a refactor that breaks those seams fails here, not in a later profile."""
    done = subprocess.run([sys.executable, "benchmarks/micro_send.py", "--count", "40",
                           "--concurrency", "2"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    fields = dict(item.split("=", 1) for item in done.stdout.split() if "=" in item)
    assert fields["messages"] == "40" and fields["errors"] == "0", done.stdout
    assert int(fields["batches"]) >= 1  # the writer's batch observer saw the commits


def test_metrics_overhead_runs_both_variants_tiny() -> None:
    """metrics_overhead alternates metrics off and on through the same seams as micro_send,
    and checks itself that the "on" rounds counted every message."""
    done = subprocess.run([sys.executable, "benchmarks/metrics_overhead.py", "--rounds", "1",
                           "--count", "40", "--concurrency", "2"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| on / off |" in done.stdout and "- off:" in done.stdout and "- on:" in done.stdout


@pytest.mark.slow
def test_rotation_scenario_runs_tiny(tmp_path: Path) -> None:
    """benchmarks/rotation.py end to end, tiny: seed, serve, chat, rotate-keys, compare."""
    from benchmarks import rotation

    out = tmp_path / "rotation.md"
    assert rotation.main(["--messages", "300", "--senders", "2", "--rate", "4",
                          "--seconds", "1", "--markdown", str(out)]) == 0
    report = out.read_text("utf-8")
    assert "p99 during rotation / p99 without" in report
    assert "1 old version(s) destroyed" in report


def test_search_benchmark_runs_tiny(tmp_path: Path) -> None:
    """benchmarks/search.py end to end, tiny: seed messages and terms in bulk, search,
    compare with the history baseline, report."""
    out = tmp_path / "search.md"
    done = subprocess.run([sys.executable, "benchmarks/search.py", "--messages", "2000",
                           "--rooms", "12", "--users", "5", "--vocabulary", "800",
                           "--queries", "20", "--markdown", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    report = out.read_text("utf-8")
    assert "| all searches | 20 |" in report and "baseline: newest 20 of a room" in report
    assert "search p99" in report
