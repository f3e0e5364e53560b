"""The bare baseline with Streamzy's room emit (no asyncio task per recipient).

Streamzy's in-process manager (streamzy.realtime.server.InlineEmitManager) appends a room
message to each recipient's queue in a loop, where python-socketio creates one task per
recipient. Running the baseline with the same manager separates that change from the rest
of Streamzy's pipeline: ``--baseline-app benchmarks.experiments.baseline_inline:app``.
"""

from benchmarks.baseline_server import app, sio
from streamzy.realtime.server import InlineEmitManager

sio.manager.__class__ = InlineEmitManager  # same state, only emit differs
__all__ = ["app"]
