"""``streamzy`` commands: backup and restore, export."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's commands to the parser (none yet)."""
