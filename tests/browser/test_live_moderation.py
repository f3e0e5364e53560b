"""The room page follows moderation as it happens, without a reload: removed (kicked or
banned), muted and unmuted, promoted to moderator, and the room archived or slowed down
(the server's `removed`, `standing` and `room_state` events, streamzy/realtime/room_notices.py)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from streamzy.guards.context import SYSTEM
from tests.browser.conftest import BrowserServer, Browsing, artifact, expect
from tests.browser.helpers import Frames, open_room

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
# A moderator's own socket (as a client would send it), with the page's CSRF token.
EMIT = """async ({event, payload}) => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const socket = window.io({transports: ["websocket"], auth: {csrf}, reconnection: false});
  try {
    await new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("connect_error", reject);
    });
    return await socket.timeout(5000).emitWithAck(event, payload);
  } finally {
    socket.disconnect();
  }
}"""


async def members(server: BrowserServer, room: int, *users: Any) -> None:
    info = await server.services.rooms.resolve(room)
    for user in users:
        await server.services.rooms.join(user.id, info)


def joins(frames: Frames) -> int:
    return sum(1 for f in frames.sent if re.match(r'^42\d*\["join"', f))


async def test_a_kicked_member_stops_acting_joined(browsing: Browsing,
                                                  server: BrowserServer) -> None:
    room = await server.room("general", topic="Everything")
    await server.room("random")
    admin = await server.admin()
    bob, carol = await server.make_user("bob"), await server.make_user("carol")
    await members(server, room, bob, carol)
    await server.services.room_roles.set_role(admin.id, room, bob.id, "moderator", SYSTEM)
    await server.post(room, bob, "Please keep it on topic.", "b1")

    # Carol watches the room on a desktop and on a phone; Bob watches it too.
    desktop = await browsing.page(carol, viewport=DESKTOP)
    phone = await browsing.page(carol, phone=True, viewport=PHONE)
    frames = Frames(desktop)
    for page in (desktop, phone):
        await open_room(page, "general")
    moderator = await browsing.page(bob)
    await open_room(moderator, "general")
    await expect(desktop.locator("#presence li")).to_have_count(2)
    await expect(desktop.locator("#manage-link")).to_be_hidden()

    ack = await moderator.evaluate(EMIT, {"event": "kick", "payload": {
        "room": room, "user": carol.id, "reason": "off topic"}})
    assert ack == {"ok": True}, ack

    for page in (desktop, phone):
        note = page.locator("#composer-note")
        await expect(note).to_have_text("You were removed from this room by a moderator.")
        await expect(note).to_have_attribute("data-kind", "removed")
        await expect(page.get_by_label("Message #general")).to_be_disabled()
        await expect(page.get_by_role("button", name="Send")).to_be_disabled()
        await expect(page.locator("#presence li")).to_have_count(0)
        await expect(page.locator("#online-title")).to_have_text("Online")
        await expect(page.locator("#conn-state")).to_have_attribute("data-state", "removed")
        link = page.locator(f'#room-links a[data-room-id="{room}"]')
        await expect(link).to_have_class(re.compile(r"\bremoved\b"))
        await expect(link.locator(".removed-tag")).to_have_text("removed")
        # What was said stays readable.
        await expect(page.locator("#messages .message .text")).to_have_text(
            ["Please keep it on topic."])
    await expect(moderator.locator("#presence li")).to_have_count(1)
    await desktop.screenshot(path=artifact("room-removed-desktop.png"))
    await phone.screenshot(path=artifact("room-removed-phone.png"))

    # The transport drops and comes back: the page reconnects but does not join again
    # (a public room would have taken her back).
    sent_joins, opened = joins(frames), sum(1 for f in frames.received if f.startswith("40"))
    await server._hangup.hang_up()
    await frames.until(lambda: sum(1 for f in frames.received if f.startswith("40")) > opened)
    await asyncio.sleep(1)
    assert joins(frames) == sent_joins
    assert not await server.services.rooms.is_member(carol.id, room)
    await expect(desktop.locator("#conn-state")).to_have_attribute("data-state", "removed")
    await expect(desktop.get_by_label("Message #general")).to_be_disabled()


async def test_a_ban_says_so_and_another_rooms_link_goes(browsing: Browsing,
                                                         server: BrowserServer) -> None:
    general, random = await server.room("general"), await server.room("random")
    admin = await server.admin()
    dan = await server.make_user("dan")
    await members(server, general, dan)
    await members(server, random, dan)
    page = await browsing.page(dan)
    await open_room(page, "general")
    await expect(page.locator(f'#room-links a[data-room-id="{random}"]')).to_have_count(1)

    await server.services.moderation.ban(admin.id, random, dan.id, None, "", SYSTEM)
    await expect(page.locator(f'#room-links a[data-room-id="{random}"]')).to_have_count(0)
    await expect(page.get_by_label("Message #general")).to_be_enabled()  # still here

    await server.services.moderation.ban(admin.id, general, dan.id, 60, "", SYSTEM)
    await expect(page.locator("#composer-note")).to_have_text("You were banned from this room.")
    await expect(page.locator("#conn-state")).to_have_text("Banned")
    await expect(page.get_by_label("Message #general")).to_be_disabled()


async def test_muted_then_unmuted_live(browsing: Browsing, server: BrowserServer) -> None:
    room = await server.room("general")
    admin = await server.admin()
    lou = await server.make_user("lou")
    page = await browsing.page(lou)
    await open_room(page, "general")
    note = page.locator("#composer-note")
    await expect(note).to_be_hidden()

    await server.services.moderation.mute(admin.id, room, lou.id, 60, "", SYSTEM)
    await expect(note).to_have_text(re.compile(r"^You are muted in this room until .+\.$"))
    await expect(note).to_have_attribute("data-kind", "muted")

    # A page opened while the mute is in force shows it at once.
    await page.reload()
    await expect(page.locator("#conn-state")).to_have_text("Connected")
    await expect(note).to_have_text(re.compile(r"^You are muted in this room until .+\.$"))

    await server.services.moderation.unmute(admin.id, room, lou.id, SYSTEM)
    await expect(note).to_be_hidden()
    await expect(page.get_by_label("Message #general")).to_be_enabled()


async def test_a_member_promoted_live_gets_moderator_actions(browsing: Browsing,
                                                             server: BrowserServer) -> None:
    room = await server.room("general")
    admin = await server.admin()
    eve, finn = await server.make_user("eve"), await server.make_user("finn")
    await members(server, room, eve, finn)
    await server.post(room, finn, "a message from finn", "f1")
    page = await browsing.page(eve)
    await open_room(page, "general")
    finns = page.locator("#messages .message").filter(has_text="a message from finn")
    delete = finns.locator('[data-action="delete"]')
    manage = page.locator("#manage-link")
    await expect(finns.locator('[data-action="report"]')).to_have_count(1)
    await expect(delete).to_have_count(0)
    await expect(manage).to_be_hidden()

    await server.services.room_roles.set_role(admin.id, room, eve.id, "moderator", SYSTEM)
    await expect(delete).to_have_count(1)
    await expect(manage).to_be_visible()
    await expect(manage).to_have_attribute("href", "/rooms/general/manage")
    await expect(manage).to_have_text("Manage room")

    await server.services.room_roles.set_role(admin.id, room, eve.id, "member", SYSTEM)
    await expect(delete).to_have_count(0)
    await expect(manage).to_be_hidden()

    # An owner (here the admin who made the room) has the link from the start.
    for name, viewport, phone in (("desktop", DESKTOP, False), ("phone", PHONE, True)):
        owner = await browsing.page(admin, phone=phone, viewport=viewport)
        await open_room(owner, "general")
        await expect(owner.locator("#manage-link")).to_be_visible()
        await owner.screenshot(path=artifact(f"room-manage-link-{name}.png"))
        assert await owner.evaluate(
            "document.documentElement.scrollWidth <= document.documentElement.clientWidth")


async def test_archive_and_slow_mode_flip_the_composer_live(browsing: Browsing,
                                                            server: BrowserServer) -> None:
    room = await server.room("general")
    admin = await server.admin()
    gus = await server.make_user("gus")
    page = await browsing.page(gus)
    await open_room(page, "general")
    composer, note = page.get_by_label("Message #general"), page.locator("#composer-note")
    await expect(composer).to_be_enabled()

    await server.services.room_roles.archive(admin.id, room, True, SYSTEM)
    await expect(note).to_have_text(re.compile(r"archived"))
    await expect(note).to_have_attribute("data-kind", "archived")
    await expect(composer).to_be_disabled()
    await expect(page.get_by_role("button", name="Send")).to_be_disabled()

    await server.services.room_roles.archive(admin.id, room, False, SYSTEM)
    await expect(note).to_be_hidden()
    await expect(composer).to_be_enabled()

    await server.services.moderation.set_slow_mode(admin.id, room, 30, SYSTEM)
    await expect(note).to_have_text("Slow mode: one message every 30 s.")
    await server.services.moderation.set_slow_mode(admin.id, room, 0, SYSTEM)
    await expect(note).to_be_hidden()
