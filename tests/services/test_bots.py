"""Bots without a server: a token shown once and stored hashed, resolved, revoked at once."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from streamzy.services.errors import NotFound
from streamzy.services.events import BotTokenRevoked
from streamzy.storage.models import BotToken
from streamzy.wiring import Services
from tests.conftest import CLIENT, audit_rows, make_user


async def stored_tokens(services: Services) -> list[BotToken]:
    async with services.db.unit() as db:
        return list((await db.execute(select(BotToken))).scalars())


async def test_create_returns_the_token_once_and_stores_only_its_digest(
        services: Services) -> None:
    admin = await make_user(services, "boss", admin=True)
    room = await services.rooms.create(admin.id, "general", "", False, CLIENT)
    bot, token = await services.bots.create(admin.id, "deploy-bot", "Deploy", [room.id], CLIENT)
    assert token.startswith("szb_") and len(token) > 40
    assert bot.is_bot and not bot.must_change_password and bot.password_hash == ""
    [row] = await stored_tokens(services)
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token.startswith(row.prefix) and len(row.prefix) < len(token) // 2  # public part
    assert token not in " ".join(str(v) for v in vars(row).values())
    assert await services.rooms.is_member(bot.id, room.id)
    [created] = await audit_rows(services, "bot_created")
    assert token not in created.detail


async def test_the_token_resolves_to_the_bot(services: Services) -> None:
    admin = await make_user(services, "boss", admin=True)
    bot, token = await services.bots.create(admin.id, "deploy-bot", "Deploy", [], CLIENT)
    identity = await services.bots.resolve(token)
    assert identity is not None
    assert (identity.user_id, identity.username, identity.display_name) == (bot.id,
                                                                           "deploy-bot",
                                                                           "Deploy")
    assert await services.bots.still_valid(identity.token_id)


@pytest.mark.parametrize("forged", [None, "", "szb_", "not-a-bot-token", "szb_" + "x" * 300])
async def test_anything_else_resolves_to_nobody(services: Services, forged: str | None) -> None:
    admin = await make_user(services, "boss", admin=True)
    await services.bots.create(admin.id, "deploy-bot", "Deploy", [], CLIENT)
    assert await services.bots.resolve(forged) is None


async def test_the_digest_or_a_session_token_is_not_a_bot_token(services: Services) -> None:
    admin = await make_user(services, "boss", admin=True)
    await services.bots.create(admin.id, "deploy-bot", "Deploy", [], CLIENT)
    [row] = await stored_tokens(services)
    assert await services.bots.resolve(row.token_hash) is None
    assert await services.bots.resolve("szb_" + row.token_hash) is None
    session_token, _ = await services.sessions.issue(admin.id, CLIENT)
    assert await services.bots.resolve(session_token) is None


async def test_revoke_ends_the_token_at_once_and_tells_realtime(services: Services) -> None:
    admin = await make_user(services, "boss", admin=True)
    _, token = await services.bots.create(admin.id, "deploy-bot", "Deploy", [], CLIENT)
    identity = await services.bots.resolve(token)
    assert identity is not None
    told: list[int] = []

    async def on_revoke(event: BotTokenRevoked) -> None:
        told.append(event.token_id)

    services.events.subscribe(BotTokenRevoked, on_revoke)
    await services.bots.revoke(admin.id, identity.token_id, CLIENT)
    assert await services.bots.resolve(token) is None
    assert not await services.bots.still_valid(identity.token_id)
    assert told == [identity.token_id]
    with pytest.raises(NotFound):
        await services.bots.revoke(admin.id, identity.token_id, CLIENT)
    assert len(await audit_rows(services, "bot_token_revoked")) == 1


async def test_disabling_the_bot_account_disables_its_tokens(services: Services) -> None:
    admin = await make_user(services, "boss", admin=True)
    bot, token = await services.bots.create(admin.id, "deploy-bot", "Deploy", [], CLIENT)
    _, other = await services.bots.create(admin.id, "other-bot", "Other", [], CLIENT)
    identity = await services.bots.resolve(token)
    other_identity = await services.bots.resolve(other)
    assert identity is not None and other_identity is not None
    await services.accounts.set_active(admin.id, bot.id, False, CLIENT)
    assert await services.bots.resolve(token) is None
    assert await services.bots.valid_among([identity.token_id, other_identity.token_id,
                                            424242]) == {other_identity.token_id}


async def test_a_bot_for_a_missing_room_is_refused(services: Services) -> None:
    admin = await make_user(services, "boss", admin=True)
    with pytest.raises(NotFound):
        await services.bots.create(admin.id, "lost-bot", "Lost", [999_999], CLIENT)


async def test_a_refused_bot_leaves_no_account_or_token(services: Services) -> None:
    admin = await make_user(services, "boss", admin=True)
    with pytest.raises(NotFound):
        await services.bots.create(admin.id, "lost-bot", "Lost", [999_999], CLIENT)
    assert await services.accounts.by_username("lost-bot") is None
    assert await stored_tokens(services) == []
