"""Running a room in real Chromium: an owner creates one and names a moderator, a member
reports a message and an admin resolves it, a moderator mutes someone, slow mode."""

from __future__ import annotations

import re
from typing import Any

import pytest

from streamzy.guards.context import SYSTEM
from tests.browser.conftest import BrowserServer, Browsing, artifact, expect
from tests.browser.helpers import Frames, open_room

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# The chat page's Socket.IO client, used the way a client would send a report (the chat UI
# may not offer the button yet): a socket of its own, with the page's CSRF token.
REPORT = """async ({room, id, reason}) => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const socket = window.io({transports: ["websocket"], auth: {csrf}, reconnection: false});
  try {
    await new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("connect_error", reject);
    });
    return await socket.timeout(5000).emitWithAck("report", {room, id, reason});
  } finally {
    socket.disconnect();
  }
}"""


def refusals(frames: Frames, code: str) -> int:
    """Acks the page received that refuse with ``code``."""
    pattern = re.compile(rf'^43\d+\[\{{.*"code":\s*"{code}"')
    return sum(1 for frame in frames.received if pattern.match(frame))


async def send(page: Any, text: str) -> None:
    composer = page.locator("#composer-text")
    await composer.fill(text)
    await composer.press("Enter")


async def shoot(browsing: Browsing, user: Any, path: str, name: str) -> None:
    """Screenshots of ``path`` at desktop and phone sizes under test-artifacts/."""
    for size, viewport, phone in (("desktop", DESKTOP, False), ("phone", PHONE, True)):
        page = await browsing.page(user, phone=phone)
        await page.set_viewport_size(viewport)
        await page.goto(path)
        for details in await page.locator("details.create-room, details.moderate").all():
            await details.evaluate("d => { d.open = true; }")
        await page.screenshot(path=artifact(f"{name}-{size}.png"), full_page=True)
        # Nothing may stick out sideways on either size.
        assert await page.evaluate(
            "document.documentElement.scrollWidth <= document.documentElement.clientWidth")
        await page.close()


@pytest.mark.settings(room_creation="everyone")
async def test_owner_moderator_report_mute_and_slow_mode(browsing: Browsing,
                                                         server: BrowserServer) -> None:
    admin = await server.admin()
    olivia, bob, carol = [await server.make_user(n) for n in ("olivia", "bob", "carol")]

    # Olivia creates a private room from the rooms list; she owns it.
    owner = await browsing.page(olivia)
    await owner.set_viewport_size(DESKTOP)
    await owner.goto("/rooms")
    await expect(owner.locator("details.create-room")).to_have_attribute("open", "")  # no rooms yet
    await owner.get_by_label("Room name").fill("book-club")
    await owner.get_by_label("Topic").fill("One chapter a week")
    await owner.get_by_label("Private (invitation only)").check()
    await owner.get_by_role("button", name="Create room").click()
    await expect(owner).to_have_url(re.compile(r"/rooms/book-club/manage\?done=created$"))
    await expect(owner.locator("#manage-notice")).to_contain_text("you are its owner")
    await expect(owner.locator("#my-role")).to_contain_text("You are an owner")

    # She invites Bob and Carol, and makes Bob a moderator.
    for name in ("bob", "carol"):
        await owner.locator("#invite-username").fill(name)
        await owner.get_by_role("button", name="Invite", exact=True).click()
        await expect(owner.locator("#manage-notice")).to_contain_text(f"@{name} is now a member")
    bob_row = owner.locator("tr[data-username='bob']")
    await bob_row.get_by_text("Moderate…").click()
    await bob_row.get_by_label("Role").select_option("moderator")
    await bob_row.get_by_role("button", name="Set role").click()
    await expect(owner.locator("#manage-notice")).to_have_text("@bob is now a moderator.")
    await expect(owner.locator("tr[data-username='bob']")).to_have_attribute("data-role",
                                                                             "moderator")
    await expect(owner.locator("#member-count")).to_have_text("3")

    # Carol chats; Olivia posts something Carol reports.
    member = await browsing.page(carol)
    member_frames = Frames(member)
    await open_room(member, "book-club")
    room = await server.services.rooms.by_name("book-club")
    assert room is not None
    seq = await server.post(room.id, olivia, "buy cheap watches from my cousin", "spam-1")
    await expect(member.locator("#messages .message .text")).to_have_text(
        ["buy cheap watches from my cousin"])
    [stored] = (await server.services.history.since(room.id, seq - 1, 1, SYSTEM))[0]
    ack = await member.evaluate(REPORT, {"room": room.id, "id": stored.id,
                                         "reason": "Advertising in the book club"})
    assert ack["ok"] is True and ack["report"] > 0, ack

    # The admin sees it in the queue, opened, with who reported it, and resolves it.
    console = await browsing.page(admin)
    await console.set_viewport_size(DESKTOP)
    await console.goto("/rooms")
    await console.locator("#nav-reports").click()
    card = console.locator(f"#report-{ack['report']}")
    await expect(card.locator(".context .reported .text")).to_have_text(
        "buy cheap watches from my cousin")
    await expect(card.locator(".reason")).to_have_text("Advertising in the book club")
    await expect(card.locator(".reporter")).to_have_text("@carol")
    await expect(console.locator("#open-count")).to_contain_text("1")
    await card.get_by_role("button", name="Resolve").click()
    await expect(console.locator("#reports-notice")).to_contain_text("was resolved")
    await expect(console.locator("#reports-empty")).to_be_visible()
    await expect(console.locator("#open-count")).to_contain_text("0")

    # Bob, a moderator, mutes Carol; her next message is refused.
    moderator = await browsing.page(bob)
    await moderator.goto("/rooms/book-club/manage")
    carol_row = moderator.locator("tr[data-username='carol']")
    await carol_row.get_by_text("Moderate…").click()
    await carol_row.get_by_label("Mute for").select_option("10")
    await carol_row.get_by_placeholder("Reason (optional)").first.fill("Cool down")
    await carol_row.get_by_role("button", name="Mute").click()
    await expect(moderator.locator("#manage-notice")).to_contain_text("@carol is muted until")
    await expect(moderator.locator("tr[data-username='olivia'] details")).to_have_count(0)
    await send(member, "I was only asking")
    await member_frames.until(lambda: refusals(member_frames, "muted") == 1)
    muted = await server.audit_rows("room_muted")
    assert len(muted) == 1 and muted[0].user_id == bob.id and "Cool down" in muted[0].detail

    # The mute ends with the clock; Bob turns slow mode on; a quick second message waits.
    server.clock.advance(10 * 60)
    await moderator.get_by_label("Slow mode").select_option("30")
    await moderator.get_by_role("button", name="Save slow mode").click()
    await expect(moderator.locator("#manage-notice")).to_contain_text("one message every 30 s")
    await member.reload()
    await expect(member.locator("#conn-state")).to_have_attribute("data-state", "connected")
    await send(member, "first after the break")
    await expect(member.locator("#messages .message:not(.pending) .text").last).to_have_text(
        "first after the break")
    await send(member, "and a second one")
    await member_frames.until(lambda: refusals(member_frames, "slow_mode") == 1)
    texts = [m.text for m in (await server.services.history.page(room.id, None, 10, SYSTEM))[0]]
    assert texts[-1] == "first after the break" and "and a second one" not in texts
    browsing.allow = re.compile(r"Message not sent")

    # Screenshots of the new pages, on a desktop and on a phone.
    await shoot(browsing, olivia, "/rooms", "rooms-create")
    await shoot(browsing, olivia, "/rooms/book-club/manage", "room-manage-owner")
    await shoot(browsing, carol, "/rooms/book-club/manage", "room-manage-member")
    await shoot(browsing, admin, "/admin/reports?status=all", "admin-reports")


async def test_report_queue_screenshot_with_an_open_report(browsing: Browsing,
                                                           server: BrowserServer) -> None:
    """The queue as admins usually meet it: an open report with its context."""
    admin = await server.admin()
    room = await server.room("general", topic="Everything")
    alice, dan = await server.make_user("alice"), await server.make_user("dan")
    info = await server.services.rooms.resolve(room)
    for who in (alice, dan):
        await server.services.rooms.join(who.id, info)
    for n, (who, text) in enumerate([(alice, "Has anyone read the new release notes?"),
                                     (dan, "Yes, the search is much faster now."),
                                     (alice, "Nice. What about the mobile layout?"),
                                     (dan, "Honestly you are an idiot for asking that."),
                                     (alice, "Please keep it civil."),
                                     (dan, "Sorry, long day.")], start=1):
        await server.post(room, who, text, f"seed-{n}")
    page, _ = await server.services.history.page(room, None, 10, SYSTEM)
    reported = next(m for m in page if m.text and "idiot" in m.text)
    await server.services.reports.report(alice.id, room, reported.id,
                                         "Insulting another member.", SYSTEM)
    await shoot(browsing, admin, "/admin/reports", "admin-reports-open")
    console = await browsing.page(admin)
    await console.goto("/admin/reports")
    await expect(console.locator(".context-message")).to_have_count(6)
    await expect(console.locator(".context .reported")).to_contain_text("idiot")
