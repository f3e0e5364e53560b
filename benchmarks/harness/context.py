"""One run's shared state (options, work directory, report, knees found so far) and the
set-up every chat scenario repeats: a database of signed-in users and a server pair."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import fixtures
from benchmarks.harness.config import PREVIOUS
from benchmarks.harness.cores import wait_quiet
from benchmarks.harness.processes import Server, start_server
from benchmarks.harness.results import Report


@dataclass
class Context:
    quick: bool
    servers: list[str]
    workdir: Path
    report: Report
    duration: float
    warmup: float
    drain: float
    knees: dict[str, dict[str, float | None]] = field(default_factory=dict)
    wait_quiet: float = 0.0
    rates: list[float] | None = None
    cores: int = 2
    force_redis: bool = False

    def settle(self) -> None:
        """Before a point: with --wait-quiet, wait for other work to leave our cores."""
        if self.wait_quiet:
            wait_quiet(self.wait_quiet)


@dataclass
class ChatSetup:
    """A scenario's work directory, secrets, database of signed-in users and server env."""

    tag: str
    work: Path
    keys: fixtures.Secrets
    fx: fixtures.Fixture
    env: dict[str, str]


def chat_setup(ctx: Context, tag: str, *, rooms: int, per_room: int, logins: int = 0,
               redis_url: str = "") -> ChatSetup:
    """``rooms`` rooms of ``per_room`` signed-in members in a fresh database under ``tag``."""
    work = ctx.workdir / tag
    work.mkdir(parents=True, exist_ok=True)
    keys = fixtures.Secrets()
    fx = fixtures.chat_fixture(work, keys, rooms=rooms, per_room=per_room, logins=logins)
    return ChatSetup(tag, work, keys, fx, fixtures.server_env(fx.db_url, keys, work, redis_url))


def previous_env(streamzy_env: dict[str, str]) -> dict[str, str]:
    """The settings of Streamzy for the earlier checkout, on its own copy of the database
    (two servers may not share one SQLite file without Redis)."""
    url = streamzy_env["STREAMZY_DATABASE_URL"]
    source = Path(url.split(":///", 1)[1])
    copy = source.with_name(source.stem + "-previous" + source.suffix)
    if not copy.exists():
        shutil.copy(source, copy)
    return {**streamzy_env, "STREAMZY_DATABASE_URL": url.replace(str(source), str(copy)),
            "STREAMZY_PREVIOUS_TREE": PREVIOUS["tree"]}


@contextmanager
def pair(ctx: Context, kind: str, streamzy_env: dict[str, str], tag: str,
         baseline_env: dict[str, str] | None = None) -> Iterator[dict[str, Server]]:
    """Streamzy and the baseline under the same ASGI server ``kind``, both stopped after."""
    servers: dict[str, Server] = {}
    if PREVIOUS["tree"]:
        baseline_env = previous_env(streamzy_env)
    try:
        for name, env in (("streamzy", streamzy_env), ("baseline", baseline_env or {})):
            servers[name] = start_server(name, kind, ctx.workdir / tag, env)
        yield servers
    finally:
        for server in servers.values():
            server.stop()
