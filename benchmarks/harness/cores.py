"""CPU pinning and noise: the server owns core 0, the generator and runner core 1, and a
point measured while other work used those cores must be recognisable (or avoided)."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

from benchmarks.harness.config import LOAD_CPU, SERVER_CPU, log


def pin_runner() -> int:
    """Move this process to the generator's core and raise its file limit; returns the limit."""
    # the runner shares the generator's core; raise the file limit for 10,000 sockets
    os.sched_setaffinity(0, {LOAD_CPU})
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _cpu_times() -> dict[int, tuple[int, int]]:
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3].isdigit():
            name, *values = line.split()
            v = [int(x) for x in values]
            out[int(name[3:])] = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7], sum(v[:8]))
    return out


def core_load(seconds: float = 1.0) -> dict[int, float]:
    """Busy share of each core over ``seconds`` (our servers are idle when this runs)."""
    a = _cpu_times()
    time.sleep(seconds)
    b = _cpu_times()
    return {cpu: (b[cpu][0] - a[cpu][0]) / max(1, b[cpu][1] - a[cpu][1]) for cpu in b}


def wait_quiet(limit: float, threshold: float = 0.15) -> float:
    """Wait (at most ``limit`` s) until other work leaves our two cores; returns the load seen."""
    deadline = time.monotonic() + limit
    while True:
        load = core_load(1.0)
        worst = max(load.get(SERVER_CPU, 0), load.get(LOAD_CPU, 0))
        if worst <= threshold or time.monotonic() >= deadline:
            return worst
        log(f"cores busy with other work ({100 * worst:.0f}%): waiting")
