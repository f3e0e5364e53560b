"""An earlier checkout of Streamzy served as the "baseline" (run.py --baseline-rev REV), so
that the current code and an earlier commit are measured in the same run, point by point.

The runner puts a git worktree of REV at $STREAMZY_PREVIOUS_TREE; its ``streamzy`` package
is imported instead of this checkout's (this module runs in the baseline's own process).
"""

import os
import sys

sys.path.insert(0, os.environ["STREAMZY_PREVIOUS_TREE"])

from streamzy.asgi import app

__all__ = ["app"]
