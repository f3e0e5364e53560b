"""Erasing a person (GDPR-style): the account stays, anonymised; sessions, tokens,
memberships, reactions and mentions go; messages are deleted (tombstones keep their
sequence numbers) or anonymised; the erase is audited and earlier audit rows stay."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from streamzy.services.errors import Conflict, Forbidden, Invalid
from streamzy.services.events import SessionsEnded
from streamzy.services.message_writer import Sender
from streamzy.storage.models import (
    Application,
    AuditEvent,
    BotToken,
    Membership,
    Mention,
    Message,
    Reaction,
    RecoveryCode,
    TotpCredential,
    User,
)
from streamzy.wiring import Services
from tests.conftest import CLIENT, audit_rows, make_user
from tests.lifecycle.cli import streamzy
from tests.lifecycle.dumps import database_copy, holds
from tests.totp import enrol

PRIVATE = "carol's home address is 12 Hidden Lane"


async def world(services: Services) -> tuple[int, Sender, Sender, int]:
    admin = await make_user(services, "boss", admin=True)
    room = await services.rooms.create(admin.id, "general", "", False, CLIENT)
    carol = await make_user(services, "carol")
    dave = await make_user(services, "dave")
    await services.rooms.join(carol.id, room)
    await services.rooms.join(dave.id, room)
    return room.id, Sender(carol.id, "carol", "Carol"), Sender(dave.id, "dave", "Dave"), admin.id


async def count(services: Services, model: type, *where: object) -> int:
    async with services.db.unit() as db:
        return int(await db.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def test_erase_deletes_messages_and_anonymises_the_account(
        services: Services, tmp_path: Path) -> None:
    room_id, carol, dave, admin = await world(services)
    room = await services.rooms.resolve(room_id)
    mine = await services.messages.send(carol, room, "c1", PRIVATE, CLIENT)
    theirs = await services.messages.send(dave, room, "d1", "hi @carol", CLIENT,
                                          reply_to=mine.id)
    await services.changes.react(carol, room, theirs.id, "❤️", CLIENT)
    await services.sessions.issue(carol.user_id, CLIENT)
    ended: list[SessionsEnded] = []

    async def hear(event: SessionsEnded) -> None:
        ended.append(event)

    services.events.subscribe(SessionsEnded, hear)
    async with services.db.unit() as db:
        blob = (await db.get(Message, mine.id)).ciphertext  # type: ignore[union-attr]
    before_change = (await services.rooms.resolve(room_id)).last_change

    done = await services.erasure.erase(admin, carol.user_id, CLIENT)

    assert done.messages == 1 and done.rooms_left == 1 and done.sessions_ended == 1
    async with services.db.unit() as db:
        user = await db.get(User, carol.user_id)
    assert user is not None and user.username == f"erased-{carol.user_id}"
    assert (user.display_name, user.email, user.password_hash) == ("Erased user", "", "")
    assert not user.is_active and user.erased_at is not None
    assert ended and ended[0].reason == "erased"
    assert await count(services, Membership, Membership.user_id == carol.user_id) == 0
    assert await count(services, Reaction, Reaction.user_id == carol.user_id) == 0
    assert await count(services, Mention, Mention.user_id == carol.user_id) == 0
    # Dave's history still lines up: carol's message is a tombstone with its seq.
    page, _ = await services.history.page(room_id, None, 10, CLIENT)
    assert [(m.seq, m.deleted, bool(m.text)) for m in page] == [(1, True, False),
                                                                (2, False, True)]
    assert page[0].display_name == "Erased user"
    assert page[1].reply is not None and page[1].reply.deleted
    # Connected clients catch up: the delete took the room's next change number.
    after = await services.rooms.resolve(room_id)
    assert after.last_change > before_change
    view = await services.history.for_join(room_id, 2, 10, CLIENT, since_change=before_change)
    assert mine.id in [m.id for m in view.changes]
    (row,) = await audit_rows(services, "user_erased")
    assert row.user_id == admin and f'"target_user_id": {carol.user_id}' in row.detail
    # Earlier audit rows about her stay (the security record).
    assert await count(services, AuditEvent, AuditEvent.event == "login_succeeded") == 0
    assert await count(services, AuditEvent, AuditEvent.detail.contains(
        f'"target_user_id": {carol.user_id}')) == 1
    copy = await database_copy(services.db.url, tmp_path)
    assert not holds(copy, blob)
    assert b"carol@example.org" not in copy


async def test_anonymise_keeps_the_text_under_the_erased_account(services: Services) -> None:
    room_id, carol, _, admin = await world(services)
    room = await services.rooms.resolve(room_id)
    await services.messages.send(carol, room, "c1", "kept words", CLIENT)
    await services.erasure.erase(admin, carol.user_id, CLIENT, messages="anonymise")
    page, _ = await services.history.page(room_id, None, 10, CLIENT)
    assert [(m.text, m.display_name, m.username) for m in page] == [
        ("kept words", "Erased user", f"erased-{carol.user_id}")]


async def test_erase_removes_the_second_factor(services: Services) -> None:
    _, carol, _, admin = await world(services)
    async with services.db.unit() as db:
        user = await db.get(User, carol.user_id)
    assert user is not None
    await enrol(services, user)
    assert await count(services, TotpCredential, TotpCredential.user_id == carol.user_id) == 1
    await services.erasure.erase(admin, carol.user_id, CLIENT, messages="anonymise")
    assert await count(services, TotpCredential, TotpCredential.user_id == carol.user_id) == 0
    assert await count(services, RecoveryCode, RecoveryCode.user_id == carol.user_id) == 0
    async with services.db.unit() as db:
        erased = await db.get(User, carol.user_id)
    assert erased is not None and not erased.has_second_factor


async def test_applications_lose_personal_data_and_bot_tokens_are_revoked(
        services: Services) -> None:
    _, _, _, admin = await world(services)
    receipt = await services.applications.submit("erin", "Erin Example", "erin@example.org",
                                                "I would like to join please", CLIENT)
    (entry,) = await services.applications.pending()
    user, _ = await services.applications.approve(entry.id, admin, CLIENT)
    bot, _token = await services.bots.create(admin, "helperbot", "Helper", [], CLIENT)
    await services.erasure.erase(admin, user.id, CLIENT)
    await services.erasure.erase(admin, bot.id, CLIENT)
    async with services.db.unit() as db:
        app = (await db.execute(select(Application))).scalar_one()
        tokens = list((await db.execute(select(BotToken))).scalars())
    assert (app.email, app.reason, app.display_name, app.reference_digest) == (
        "", "", "Erased user", None)
    assert all(t.revoked_at is not None for t in tokens)
    assert receipt is not None


async def test_refusals(services: Services) -> None:
    _, carol, _, admin = await world(services)
    with pytest.raises(Forbidden):
        await services.erasure.erase(carol.user_id, admin, CLIENT)  # not an admin
    with pytest.raises(Forbidden):
        await services.erasure.erase(admin, admin, CLIENT)  # yourself
    with pytest.raises(Conflict):
        await services.erasure.erase(None, admin, CLIENT)  # the last active admin
    with pytest.raises(Invalid):
        await services.erasure.erase(admin, carol.user_id, CLIENT, confirm="not-carol")
    await services.erasure.erase(admin, carol.user_id, CLIENT)
    with pytest.raises(Conflict):
        await services.erasure.erase(admin, carol.user_id, CLIENT)


@pytest.mark.slow
async def test_cli_erase_user_and_purge(services: Services, tmp_path: Path) -> None:
    room_id, carol, _, _ = await world(services)
    room = await services.rooms.resolve(room_id)
    await services.messages.send(carol, room, "c1", PRIVATE, CLIENT)
    result = streamzy(services, tmp_path, "erase-user", "carol", "--messages", "delete")
    assert result.returncode == 0, result.stderr
    assert "now erased-" in result.stdout and "deleted: 1" in result.stdout
    rows = await audit_rows(services, "user_erased")
    assert rows and rows[0].user_id is None and rows[0].client_ip == "local"
    missing = streamzy(services, tmp_path, "erase-user", "nobody-here")
    assert missing.returncode == 1 and "No such account" in missing.stderr
    assert "Traceback" not in missing.stderr
    last = streamzy(services, tmp_path, "erase-user", "boss")
    assert last.returncode == 1 and "admin must remain" in last.stderr
    dry = streamzy(services, tmp_path, "purge", "--dry-run")
    assert dry.returncode == 0 and "total: would purge 0" in dry.stdout
