"""Streamzy (streamzy.asgi:app, unchanged code) with the three changes the profiles point at,
applied from outside so the benchmark can measure them before anyone edits streamzy/:

1. inline room emits (inline_emit.py): no asyncio task per recipient;
2. the group-commit transaction in one thread hop (thread_writer.py);
3. gc.freeze() after start-up: full collections skip the ~100 ms walk over start-up objects.

    python benchmarks/run.py --fanout --rooms --streamzy-app benchmarks.experiments.streamzy_tuned:app
"""

import gc

from benchmarks.experiments.inline_emit import install as inline_emit
from benchmarks.experiments.thread_writer import install as thread_writer
from streamzy.asgi import app

inline_emit(app.sio)
thread_writer(app.services.messages, app.services.db.url)
gc.collect()
gc.freeze()
