"""What the composer says about a room's rules: archived (read-only), muted (the text
waits in the composer, with the reason), and slow mode (a hint, then a countdown)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import update

from streamzy.guards.context import SYSTEM
from streamzy.storage.models import Room
from tests.browser.conftest import BrowserServer, Browsing, expect
from tests.browser.helpers import MESSAGE_TEXTS, open_room

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


async def test_archived_room_is_read_only(browsing: Browsing, server: BrowserServer) -> None:
    room = await server.room("old-news")
    kim = await server.make_user("kim")
    await server.post(room, kim, "the last word", "k1")
    async with server.services.db.unit() as db:
        await db.execute(update(Room).where(Room.id == room).values(
            archived_at=server.clock.now()))
    page = await browsing.page(kim)
    await open_room(page, "old-news")
    await expect(page.locator(MESSAGE_TEXTS)).to_have_text(["the last word"])
    note = page.locator("#composer-note")
    await expect(note).to_have_text(re.compile(r"archived"))
    await expect(page.get_by_label("Message #old-news")).to_be_disabled()
    await expect(page.get_by_role("button", name="Send")).to_be_disabled()


async def test_a_muted_member_keeps_the_text_and_sees_why(browsing: Browsing,
                                                         server: BrowserServer) -> None:
    # Edits and sends are refused the same way (the composer handles both through one
    # path). Muted through the use case, as a moderator would: it tells every process.
    room = await server.room("general")
    admin = await server.admin()
    lou = await server.make_user("lou")
    page = await browsing.page(lou)
    await open_room(page, "general")  # a member now
    composer = page.get_by_label("Message #general")
    await composer.fill("can anyone hear me")
    await composer.press("Enter")
    await expect(page.locator("#messages .message[data-seq]")).to_have_count(1)
    await server.services.moderation.mute(admin.id, room, lou.id, 60, "", SYSTEM)
    await composer.press("ArrowUp")
    await composer.fill("can anyone hear me?")
    await composer.press("Enter")
    await expect(page.locator("#toast")).to_contain_text("muted")
    await expect(composer).to_have_value("can anyone hear me?")  # still there to save later
    await expect(page.locator("#composer-mode")).to_contain_text("Editing message")
    await expect(page.locator(MESSAGE_TEXTS)).to_have_text(["can anyone hear me"])
    note = page.locator("#composer-note")
    await expect(note).to_have_text(re.compile(r"muted in this room until"))
    await expect(note).to_have_attribute("data-kind", "muted")

    await server.services.moderation.unmute(admin.id, room, lou.id, SYSTEM)
    await composer.press("Enter")
    await expect(page.locator(MESSAGE_TEXTS)).to_have_text(["can anyone hear me?"])
    await expect(page.locator("#composer-mode")).to_be_hidden()
    await expect(note).to_be_hidden()


async def test_slow_mode_is_announced_and_counted_down(browsing: Browsing,
                                                       server: BrowserServer) -> None:
    room = await server.room("busy")
    max_ = await server.make_user("max")
    async with server.services.db.unit() as db:
        await db.execute(update(Room).where(Room.id == room).values(slow_mode_seconds=30))
    page = await browsing.page(max_)
    await open_room(page, "busy")
    note = page.locator("#composer-note")
    await expect(note).to_have_text("Slow mode: one message every 30 s.")
    composer = page.get_by_label("Message #busy")
    await composer.fill("one")
    await composer.press("Enter")
    await expect(page.locator("#messages .message[data-seq]")).to_have_count(1)
    await expect(note).to_have_text(re.compile(r"^Slow mode: you can send again in (30|29|28) s\.$"))
    await expect(note).to_have_attribute("data-kind", "countdown")
