"""Shared by the backup tests: a populated database and an empty place to restore into."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from streamzy.config import Settings
from streamzy.services.message_state import Person
from streamzy.services.message_writer import Sender
from streamzy.storage.backup_file import new_backup_key
from streamzy.wiring import Services
from tests.conftest import BACKEND, CLIENT, _pg_execute, _pg_url, make_user, need_service

SECRET_TEXTS = ("plaintext-general-4417 hello", "plaintext-reply-5521", "plaintext-dm-9932",
                "plaintext-edited-0077")
REPORT_REASON = "plaintext-report-reason-6610"
EMOJI = "🦜"


@dataclass
class Population:
    room_id: int
    dm_id: int
    alice: Sender
    bob: Sender
    texts: dict[int, str]  # seq in general -> text as it is now


async def populate(services: Services) -> Population:
    """Two people, a room with a reply, an edit, a delete, a reaction and a report, and a DM."""
    alice_user = await make_user(services, "alice", admin=True)
    bob_user = await make_user(services, "bob")
    alice = Sender(alice_user.id, "alice", alice_user.display_name)
    bob = Sender(bob_user.id, "bob", bob_user.display_name)
    room = await services.rooms.create(alice.user_id, "general", "", False, CLIENT)
    await services.rooms.invite(alice.user_id, room.id, "bob", CLIENT)
    first = await services.posting.send(alice, room, "c1", SECRET_TEXTS[0], CLIENT)
    await services.posting.send(bob, room, "c2", SECRET_TEXTS[1], CLIENT, reply_to=first.id)
    edited = await services.posting.send(bob, room, "c3", "before the edit", CLIENT)
    await services.changes.edit(bob, room, edited.id, SECRET_TEXTS[3], CLIENT)
    gone = await services.posting.send(alice, room, "c4", "deleted later", CLIENT)
    await services.changes.delete(alice, room, gone.id, CLIENT)
    await services.changes.react(bob, room, first.id, EMOJI, CLIENT)
    await services.reports.report(bob.user_id, room.id, first.id, REPORT_REASON, CLIENT)
    dm = await services.direct.open(Person(alice.user_id, "alice", "Alice"), ["bob"], CLIENT)
    await services.posting.send(alice, dm.room, "c5", SECRET_TEXTS[2], CLIENT)
    texts = {1: SECRET_TEXTS[0], 2: SECRET_TEXTS[1], 3: SECRET_TEXTS[3]}
    return Population(room.id, dm.room.id, alice, bob, texts)


@pytest.fixture
def backup_key() -> str:
    return new_backup_key()


@pytest.fixture
async def empty_target(tmp_path: Path) -> AsyncIterator[str]:
    """Where a restore goes: a file that does not exist yet, or an empty PostgreSQL
    database."""
    if BACKEND != "postgres":
        (tmp_path / "restored").mkdir()
        yield f"sqlite+aiosqlite:///{tmp_path / 'restored' / 'streamzy.db'}"
        return
    base = need_service("STREAMZY_TEST_DATABASE_URL", "PostgreSQL")
    name = f"streamzy_r_{uuid.uuid4().hex[:12]}"
    await _pg_execute(base, f"CREATE DATABASE {name}")
    yield _pg_url(base, name)
    await _pg_execute(base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


ROOT = Path(__file__).resolve().parents[2]


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a `streamzy` process runs with for ``settings`` (production mode:
    nothing generated into a .env)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMZY_")}
    env.update(PYTHONPATH=str(ROOT), STREAMZY_ENV="production",
               STREAMZY_DATABASE_URL=settings.database_url,
               STREAMZY_SECRET_KEY=settings.secret_key.get_secret_value(),
               STREAMZY_PASSWORD_PEPPER=settings.password_pepper.get_secret_value(),
               STREAMZY_MESSAGE_KEYS=",".join(k.get_secret_value()
                                              for k in settings.message_keys),
               STREAMZY_BACKUP_KEY=settings.backup_key.get_secret_value(),
               STREAMZY_AUDIT_LOG_PATH=settings.audit_log_path)
    env.update(extra)
    return env


def run(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=300, check=False)


def streamzy(settings: Settings, cwd: Path, *args: str,
             **extra: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "streamzy.cli", *args], cli_env(settings, **extra), cwd)
