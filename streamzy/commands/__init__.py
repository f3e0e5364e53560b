"""Sub-commands of ``streamzy`` beyond serving: each module registers its own on the parser
(``register(sub)``), so ``cli.py`` stays the entry point and nothing more."""

from __future__ import annotations

import argparse

from streamzy.commands import audit, backup, data, keys, search


def register_all(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for module in (keys, backup, audit, data, search):
        module.register(sub)
