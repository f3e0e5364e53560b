"""Scenario 2, many small rooms: 1,000 clients in 100 rooms of 10, one sender per room, where
Streamzy's per-message work weighs most against few deliveries."""

from __future__ import annotations

from benchmarks.harness.compare import sweep
from benchmarks.harness.context import Context

TARGET = ("many-small-rooms knee >= 0.8x baseline", 0.80)


def run(ctx: Context) -> None:
    rooms = 30 if ctx.quick else 100  # quick: 300 clients, to stay within a few minutes
    sweep(ctx, "rooms", f"2. Many small rooms: {rooms * 10:,} clients in {rooms} rooms of 10, "
          f"{rooms} senders", TARGET, rooms=rooms, per_room=10, n_senders=rooms, start=50,
          factor=1.6, max_rate=20000, quick_rates=[60])
