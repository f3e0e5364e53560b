"""Scenario 1, fan-out: 200 clients in one room, 20 senders; Streamzy's knee against the
baseline's. Its own module so its size and target can change without touching the others."""

from __future__ import annotations

from benchmarks.harness.compare import sweep
from benchmarks.harness.context import Context

TARGET = ("fan-out knee >= 0.95x baseline", 0.95)


def run(ctx: Context) -> None:
    sweep(ctx, "fanout", "1. Fan-out: 200 clients in one room, 20 senders", TARGET, rooms=1,
          per_room=200, n_senders=20, start=10, factor=1.6, max_rate=2000,
          quick_rates=[20])
