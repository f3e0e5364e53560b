"""Streamzy against a bare python-socketio baseline, side by side, in the same run.

    python benchmarks/run.py --quick                      # sanity run, ~5 minutes
    python benchmarks/run.py --fanout --rooms             # the two throughput scenarios
    python benchmarks/run.py --all --json results.json    # everything (long)

Every server runs as a subprocess pinned to CPU 0 (``taskset``); the Node load generator and
this runner run on CPU 1. Streamzy and the baseline are started under the same ASGI server
(Hypercorn with the repository's hypercorn.toml, or Uvicorn with matching limits) and
measured alternately, point by point, so that both see the same machine. Each scenario
prints a table and a summary line with the Streamzy/baseline ratio and its target.
Only 127.0.0.1 is ever targeted, and everything is bounded: every run has a duration, every
wait a timeout, every subprocess is ended when the runner ends.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The runner is the command line only: the harness and one module per scenario do the work.
from benchmarks.harness import loadgen  # noqa: E402
from benchmarks.harness.config import (  # noqa: E402
    APPS,
    DEFAULT_APPS,
    LOAD_CPU,
    LOOP,
    PREVIOUS,
    PREVIOUS_APP,
    ROOT,
    log,
)
from benchmarks.harness.context import Context  # noqa: E402
from benchmarks.harness.cores import pin_runner  # noqa: E402
from benchmarks.harness.results import Report  # noqa: E402
from benchmarks.harness.versions import commit, versions  # noqa: E402
from benchmarks.scenarios import SCENARIOS  # noqa: E402


def parser() -> argparse.ArgumentParser:
    """The command line (options, help texts and their order are part of the interface)."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="sanity run: every scenario, short and small (~5 min)")
    parser.add_argument("--all", action="store_true", help="every scenario, full size")
    for scenario in SCENARIOS.values():
        # dest is the name itself (getattr(args, "large-room")), not argparse's large_room
        parser.add_argument(f"--{scenario.name}", action="store_true", dest=scenario.name,
                            help=scenario.help)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop",
                        help="event loop of both servers (Hypercorn --worker-class, Uvicorn "
                             "--loop); uvloop is what hypercorn.toml ships")
    parser.add_argument("--force-redis", action="store_true",
                        help="run scenario 6 even with fewer than 4 cores (smoke test)")
    parser.add_argument("--servers", default="hypercorn,uvicorn",
                        help="comma list of hypercorn, uvicorn (default both)")
    parser.add_argument("--duration", type=float, help="measured seconds per point")
    parser.add_argument("--rates", help="comma list of fixed rates (msg/s) instead of the "
                                        "knee search, for --fanout / --rooms; the first is "
                                        "the chat rate of --logins")
    parser.add_argument("--json", type=Path, help="write raw results here")
    parser.add_argument("--markdown", type=Path, help="write the tables here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                        help="before each point wait up to S s for other work to leave the "
                             "cores (shared machines)")
    parser.add_argument("--streamzy-app", default=APPS["streamzy"],
                        help="ASGI app measured as Streamzy (e.g. an experiment module)")
    parser.add_argument("--baseline-app", default=APPS["baseline"],
                        help="ASGI app measured as the baseline")
    parser.add_argument("--baseline-rev", default="", metavar="REV",
                        help="measure Streamzy at git revision REV in the baseline's place "
                             "(before/after a change, in the same run)")
    return parser


def checkout(rev: str) -> str:
    """A detached git worktree of ``rev`` (reused if it is there), for --baseline-rev."""
    tree = Path(tempfile.gettempdir()) / f"streamzy-rev-{rev}"
    if not tree.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev],
                       check=True, capture_output=True)
    return str(tree)


def main(argv: list[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    APPS["streamzy"], APPS["baseline"] = args.streamzy_app, args.baseline_app
    if args.baseline_rev:
        APPS["baseline"] = PREVIOUS_APP
        PREVIOUS["tree"] = checkout(args.baseline_rev)
    LOOP["name"] = args.loop

    chosen = [name for name in SCENARIOS if getattr(args, name)]
    if args.all or (args.quick and not chosen):
        chosen = list(SCENARIOS)
    if not chosen:
        cli.error("choose --quick, --all or one or more scenarios")
    loadgen.ensure_installed()
    cores = len(os.sched_getaffinity(0))
    if cores < 2:
        cli.error(f"needs 2 CPUs: the server on CPU 0, the load on CPU {LOAD_CPU}")
    hard = pin_runner()
    if hard < 25_000 and {"idle", "large-room"} & set(chosen):
        log(f"file limit {hard}: enough for 10,000 sockets per process")

    workdir = Path(tempfile.mkdtemp(prefix="streamzy-bench-"))
    ctx = Context(quick=args.quick, servers=[s.strip() for s in args.servers.split(",") if s],
                  workdir=workdir, report=Report(),
                  duration=args.duration or (2.0 if args.quick else 10.0),
                  warmup=0.5 if args.quick else 2.0, drain=3.0 if args.quick else 5.0,
                  wait_quiet=args.wait_quiet,
                  rates=[float(r) for r in args.rates.split(",")] if args.rates else None,
                  cores=cores, force_redis=args.force_redis)
    started = time.monotonic()
    header = (f"Streamzy benchmark ({commit() or 'no git'}), {time.strftime('%Y-%m-%d %H:%M')}, "
              f"{'quick' if args.quick else 'full'} mode, {ctx.duration:g} s per point, "
              f"{LOOP['name']} event loop. "
              f"{versions()}.")
    if APPS != DEFAULT_APPS:
        header += f" Apps: Streamzy = {APPS['streamzy']}, baseline = {APPS['baseline']}."
    if PREVIOUS["tree"]:
        header += f" The baseline is Streamzy at {args.baseline_rev} (--baseline-rev)."
    print(header, flush=True)
    log(f"work directory {workdir}")
    failed = []
    try:
        for name in chosen:
            t0 = time.monotonic()
            try:
                SCENARIOS[name].run(ctx)
            except Exception as exc:
                failed.append(name)
                log(f"scenario {name} failed: {exc!r}")
                ctx.report.add(f"{name}: FAILED", f"`{exc!r}` (logs in {workdir})")
            log(f"scenario {name} took {time.monotonic() - t0:.0f} s")
    finally:
        elapsed = time.monotonic() - started
        print(f"\nTotal time {elapsed:.0f} s.", flush=True)
        if args.json:
            args.json.write_text(json.dumps({"header": header, "results": ctx.report.data,
                                             "knees": ctx.knees}, indent=1))
        if args.markdown:
            args.markdown.write_text(header + "\n\n" + "\n".join(ctx.report.sections))
        if args.keep or failed:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
