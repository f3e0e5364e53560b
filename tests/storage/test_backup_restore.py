"""Backup -> restore round trips through the services, on the backend under test, and the
refusals: wrong master key, wrong backup key, damaged files, a target in use or not empty."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import func, select, text

from streamzy.clock import ManualClock
from streamzy.config import Settings
from streamzy.services import backups
from streamzy.services.backup_postgres import PgTarget, table_count
from streamzy.services.backups import BackupError
from streamzy.services.message_writer import Sender
from streamzy.storage import system_state
from streamzy.storage.backup_file import PlainReader, new_backup_key, parse_backup_key
from streamzy.storage.db import Database
from streamzy.storage.migrate import upgrade
from streamzy.storage.models import Message, Room
from streamzy.wiring import build_services
from tests.conftest import BACKEND, CLIENT
from tests.storage.backup_fixtures import (
    EMOJI,
    REPORT_REASON,
    SECRET_TEXTS,
    backup_key,  # noqa: F401 - a fixture
    empty_target,  # noqa: F401 - a fixture
    populate,
)


@pytest.fixture
def make(settings_factory: Callable[..., Settings], backup_key: str) -> Callable[..., Settings]:  # noqa: F811
    def build(**overrides: object) -> Settings:
        return settings_factory(backup_key=backup_key, **overrides)
    return build


def _with(settings: Settings, **changes: object) -> Settings:
    """The same settings (same message keys) with ``changes``."""
    values = {k: SecretStr(v) if k == "backup_key" else v for k, v in changes.items()}
    return settings.model_copy(update=values)


async def _backup(settings: Settings, clock: ManualClock, out: Path) -> backups.Manifest:
    services = build_services(settings, clock)
    try:
        await populate(services)
    finally:
        await services.close()
    return await backups.create(settings, out, clock)


async def test_round_trip_restores_readable_messages_reactions_dms_and_reports(
        make: Callable[..., Settings], clock: ManualClock, tmp_path: Path,
        empty_target: str) -> None:  # noqa: F811
    settings = make()
    out = tmp_path / "streamzy.backup"
    manifest = await _backup(settings, clock, out)
    assert manifest.backend == ("postgresql" if BACKEND == "postgres" else "sqlite")
    assert (manifest.rooms, manifest.messages, manifest.room_keys) == (2, 5, 2)
    assert out.stat().st_mode & 0o777 == 0o600
    assert not Path(f"{out}.partial").exists()

    outcome = await backups.restore(settings, out, empty_target)
    assert outcome.ok and outcome.verified.failed == 0
    assert outcome.verified.checked == 4 + 1 + 1  # live messages, the reaction, the report

    restored = build_services(_with(settings, database_url=empty_target), clock)
    try:
        room = await restored.rooms.by_name("general")
        assert room is not None
        messages, _ = await restored.history.page(room.id, None, 50, CLIENT)
        assert [m.text for m in messages if not m.deleted] == [
            SECRET_TEXTS[0], SECRET_TEXTS[1], SECRET_TEXTS[3]]
        assert [m.reactions[0].emoji for m in messages if m.reactions] == [EMOJI]
        assert messages[1].reply is not None and messages[1].reply.seq == 1
        queue = await restored.reports.queue("open", 1, messages[0].sender_id or 0, CLIENT)
        assert REPORT_REASON in repr(queue)
        dms = [r for r in await restored.rooms.visible(messages[0].sender_id or 0)
               if r.kind == "dm"]
        dm = await restored.rooms.get(dms[0].id)
        assert dm is not None
        dm_messages, _ = await restored.history.page(dm.id, None, 10, CLIENT)
        assert [m.text for m in dm_messages] == [SECRET_TEXTS[2]]
        # The restored server writes on: a new message takes the next sequence number.
        alice = Sender(messages[0].sender_id or 0, "alice", "Alice")
        sent = await restored.posting.send(alice, room, "after", "after the restore", CLIENT)
        assert sent.seq == room.last_seq + 1
    finally:
        await restored.close()


async def test_the_backup_holds_no_master_key_and_no_plaintext(
        make: Callable[..., Settings], clock: ManualClock, tmp_path: Path) -> None:
    settings = make()
    out = tmp_path / "b.backup"
    await _backup(settings, clock, out)
    blob = out.read_bytes()
    with out.open("rb") as handle:
        inside = PlainReader(handle, parse_backup_key(settings.backup_key.get_secret_value()))
        decrypted = inside.read()
    assert len(decrypted) > 1000  # the database really is in there
    for secret in [k.get_secret_value() for k in settings.message_keys]:
        for where in (blob, decrypted):
            assert secret.encode() not in where
            assert Fernet(secret.encode())._signing_key not in where
    for plain in (*SECRET_TEXTS, REPORT_REASON):
        assert plain.encode() not in blob
        assert plain.encode() not in decrypted
    assert EMOJI.encode() not in decrypted


async def test_a_wrong_master_key_fails_and_leaves_the_target_alone(
        make: Callable[..., Settings], clock: ManualClock, tmp_path: Path,
        empty_target: str) -> None:  # noqa: F811
    settings = make()
    out = tmp_path / "b.backup"
    await _backup(settings, clock, out)
    stranger = make(message_keys=[Fernet.generate_key().decode()])
    with pytest.raises(BackupError, match=r"6 of 6 sealed rows did not decrypt") as raised:
        await backups.restore(stranger, out, empty_target)
    assert raised.value.code == "not_verified"
    if BACKEND == "postgres":
        assert await table_count(PgTarget.of(empty_target)) == 0
    else:
        target = Path(empty_target.split(":///", 1)[1])
        assert not target.exists()
        assert list(target.parent.iterdir()) == []  # no scratch file left behind


async def test_an_old_key_still_listed_restores(
        make: Callable[..., Settings], clock: ManualClock, tmp_path: Path,
        empty_target: str) -> None:  # noqa: F811
    settings = make()
    out = tmp_path / "b.backup"
    await _backup(settings, clock, out)
    rotated = make(message_keys=[Fernet.generate_key().decode(),
                                 settings.message_keys[0].get_secret_value()])
    assert (await backups.restore(rotated, out, empty_target)).ok


async def test_damaged_files_and_a_wrong_backup_key_are_refused(
        make: Callable[..., Settings], clock: ManualClock, tmp_path: Path,
        empty_target: str) -> None:  # noqa: F811
    settings = make()
    out = tmp_path / "b.backup"
    await _backup(settings, clock, out)
    blob = out.read_bytes()
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0x40
    cases = {"tampered": (bytes(flipped), "altered"),
             "truncated": (blob[: len(blob) - 100], "truncated"),
             "cut at a chunk": (blob[:36], "truncated"),
             "not a backup": (b"hello" * 100, "not a Streamzy backup")}
    for name, (content, message) in cases.items():
        bad = tmp_path / f"{name}.backup"
        bad.write_bytes(content)
        with pytest.raises(BackupError, match=message):
            await backups.restore(settings, bad, empty_target)
    with pytest.raises(BackupError, match="different STREAMZY_BACKUP_KEY"):
        await backups.restore(_with(settings, backup_key=new_backup_key()), out,
                              empty_target)
    if BACKEND == "postgres":
        assert await table_count(PgTarget.of(empty_target)) == 0
    else:
        assert not Path(empty_target.split(":///", 1)[1]).exists()


async def test_restore_refuses_to_overwrite_without_force(
        make: Callable[..., Settings], clock: ManualClock, tmp_path: Path,
        database_url: str) -> None:
    settings = make()
    out = tmp_path / "b.backup"
    await _backup(settings, clock, out)
    with pytest.raises(BackupError.__mro__[1], match="--force"):
        await backups.restore(settings, out, database_url)
    outcome = await backups.restore(settings, out, database_url, force=True)
    assert outcome.ok


async def test_restore_refuses_while_a_server_holds_the_database(
        make: Callable[..., Settings], clock: ManualClock, tmp_path: Path,
        database_url: str) -> None:
    settings = make()
    out = tmp_path / "b.backup"
    await _backup(settings, clock, out)
    live = Database(database_url)
    assert await live.claim_sole_server()
    try:
        with pytest.raises(BackupError.__mro__[1], match="server is using"):
            await backups.restore(settings, out, database_url, force=True)
    finally:
        await live.dispose()


async def test_a_backup_never_overwrites_a_file(
        make: Callable[..., Settings], clock: ManualClock, tmp_path: Path) -> None:
    settings = make()
    out = tmp_path / "b.backup"
    out.write_bytes(b"precious")
    with pytest.raises(BackupError.__mro__[1], match="exists already"):
        await backups.create(settings, out, clock)
    assert out.read_bytes() == b"precious"


async def test_no_backup_key_no_backup(settings_factory: Callable[..., Settings],
                                       clock: ManualClock, tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="gen-key --backup"):
        await backups.create(settings_factory(), tmp_path / "b.backup", clock)
    assert list(tmp_path.glob("b.backup*")) == []


async def test_a_backup_taken_while_the_server_writes_is_consistent(
        make: Callable[..., Settings], clock: ManualClock, tmp_path: Path,
        empty_target: str) -> None:  # noqa: F811
    settings = make()
    services = build_services(settings, clock)
    out = tmp_path / "b.backup"
    try:
        people = await populate(services)
        room = await services.rooms.get(people.room_id)
        assert room is not None
        stop = asyncio.Event()

        async def write() -> int:
            sent = 0
            while not stop.is_set():
                await services.messages.send(people.bob, room, f"w{sent}", f"busy {sent}",
                                             CLIENT)
                sent += 1
            return sent

        writers = [asyncio.create_task(write()) for _ in range(1)]
        await asyncio.sleep(0)  # the writer is under way before the backup starts
        manifest = await backups.create(settings, out, clock)
        stop.set()
        written = sum(await asyncio.gather(*writers))
    finally:
        await services.close()
    assert written > 0
    outcome = await backups.restore(settings, out, empty_target)
    assert outcome.ok
    db = Database(empty_target)
    try:
        async with db.unit() as session:
            count = (await session.execute(select(func.count()).select_from(Message)))\
                .scalar_one()
            # Every room's counter matches its messages: no half-written batch was copied.
            rooms = (await session.execute(select(Room.id, Room.last_seq))).all()
            for room_id, last_seq in rooms:
                top = (await session.execute(select(func.coalesce(func.max(Message.seq), 0))
                                             .where(Message.room_id == room_id))).scalar_one()
                assert top == last_seq
    finally:
        await db.dispose()
    assert count == manifest.messages
    assert 5 <= count <= 5 + written


async def test_verify_records_the_outcome_in_the_live_database(
        make: Callable[..., Settings], clock: ManualClock, tmp_path: Path) -> None:
    settings = make()
    out = tmp_path / "b.backup"
    await _backup(settings, clock, out)
    outcome = await backups.verify_backup(settings, out, clock)
    assert outcome.ok
    live = Database(settings.database_url)
    try:
        recorded = await system_state.read_json(live, system_state.BACKUP_VERIFIED)
    finally:
        await live.dispose()
    assert recorded == {"file": "b.backup", "at": clock.now().isoformat(), "messages": 4,
                        "ok": True}
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []

    stranger = make(message_keys=[Fernet.generate_key().decode()])
    with pytest.raises(BackupError, match="did not decrypt"):
        await backups.verify_backup(stranger, out, clock)
    live = Database(settings.database_url)
    try:
        recorded = await system_state.read_json(live, system_state.BACKUP_VERIFIED)
    finally:
        await live.dispose()
    assert recorded is not None and recorded["ok"] is False


async def test_an_older_backup_is_upgraded_on_restore(
        make: Callable[..., Settings], clock: ManualClock, tmp_path: Path,
        empty_target: str) -> None:  # noqa: F811
    # A database still at revision 0003 (before data lifecycle) is backed up and restored.
    if BACKEND == "postgres":
        from tests.conftest import _pg_execute, _pg_url
        old_url = _pg_url(empty_target, "streamzy_old_" + empty_target.rsplit("_", 1)[1])
        await _pg_execute(empty_target, f"CREATE DATABASE {old_url.rsplit('/', 1)[1]}")
    else:
        old_url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    try:
        await asyncio.to_thread(upgrade, old_url, "0003")
        settings = _with(make(), database_url=old_url)
        manifest = await backups.create(settings, tmp_path / "old.backup", clock)
        assert manifest.revision == "0003"
        assert (await backups.restore(settings, tmp_path / "old.backup", empty_target)).ok
    finally:
        if BACKEND == "postgres":
            await _pg_execute(empty_target,
                              f"DROP DATABASE IF EXISTS {old_url.rsplit('/', 1)[1]} WITH (FORCE)")
    db = Database(empty_target)
    try:
        async with db.unit() as session:
            revision = (await session.execute(text("SELECT version_num FROM alembic_version"))
                        ).scalar_one()
    finally:
        await db.dispose()
    assert revision == _head_revision()  # upgraded all the way on restore


def _head_revision() -> str:
    from alembic.script import ScriptDirectory

    from streamzy.storage.migrate import alembic_config
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    return str(head)
