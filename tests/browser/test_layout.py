"""Every page on a phone-sized screen, by keyboard, with labels; the rooms list's unread counts."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from streamzy.guards.context import SYSTEM
from tests.browser.conftest import BrowserServer, Browsing, artifact, expect
from tests.browser.helpers import Frames, open_room
from tests.waiting import assert_eventually

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

# Every visible form control must have a label (or be labelled by ARIA).
UNLABELLED = """() => [...document.querySelectorAll('input, textarea, select, button')]
  .filter(el => el.type !== 'hidden' && el.offsetParent !== null)
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !el.getAttribute('aria-labelledby') && !(el.tagName === 'BUTTON' && el.textContent.trim()))
  .map(el => el.outerHTML.slice(0, 80))"""
WIDE = """() => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
  .slice(0, 6).map(e => `${e.tagName}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`)"""
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


async def check_page(page: Any, path: str,
                     ready: Callable[[], Awaitable[None]] | None = None) -> None:
    """Load ``path``, wait until it is ``ready`` (scripts may still be building it), then
    check the phone layout. Each check waits for the page to settle (bounded)."""
    response = await page.goto(path)
    assert response is not None and response.ok, path
    if ready is not None:
        await ready()
    await expect(page.locator("h1"), f"{path} needs one h1").to_have_count(1)
    try:
        await assert_eventually(lambda: page.evaluate(OVERFLOW), 0)
    except AssertionError:
        raise AssertionError(f"{path} scrolls sideways on a phone: "
                             f"{await page.evaluate(WIDE)}") from None
    try:
        await assert_eventually(lambda: page.evaluate(UNLABELLED), [])
    except AssertionError:
        raise AssertionError(f"{path} has unlabelled controls: "
                             f"{await page.evaluate(UNLABELLED)}") from None


async def test_every_page_fits_a_phone_and_labels_its_controls(browsing: Browsing,
                                                              server: BrowserServer) -> None:
    admin = await server.admin()
    room = await server.room("general", topic="Announcements, questions and the odd cat photo")
    quinn = await server.make_user("quinn")
    for k in range(1, 8):
        await server.post(room, admin if k % 2 else quinn,
                          f"Message number {k}: a sentence long enough to wrap on a phone "
                          "screen, so the layout is tested with real text.", f"phone-{k}")
    await server.services.applications.submit(
        "rosa", "Rosa Diaz", "rosa@example.org", "I joined the night shift this week.", SYSTEM)

    visitor = await browsing.page(phone=True)
    for path in ("/", "/apply", "/apply/status", "/login", "/login?reason=inactive"):
        await check_page(visitor, path)
    await visitor.goto("/")
    await visitor.screenshot(path=artifact("landing-phone.png"), full_page=True)

    member = await browsing.page(quinn, phone=True)
    for path in ("/rooms", "/account", "/account/password"):
        await check_page(member, path)
    async def room_ready() -> None:  # connected, with every message rendered
        await expect(member.locator("#conn-state")).to_have_attribute("data-state", "connected")
        await expect(member.locator("#messages .message[data-seq]")).to_have_count(7)

    await check_page(member, "/rooms/general", room_ready)
    await expect(member.get_by_label("Message #general")).to_be_in_viewport()
    await expect(member.get_by_role("button", name="Send")).to_be_in_viewport()
    await expect(member.locator("#messages .message").last).to_be_in_viewport()
    await member.screenshot(path=artifact("room-phone.png"))

    console = await browsing.page(admin, phone=True)
    for path in ("/admin/applications", "/admin/users", "/admin/rooms", "/admin/bots",
                 "/admin/audit"):
        await check_page(console, path)
    await console.goto("/admin/applications")
    await console.screenshot(path=artifact("approval-queue-phone.png"), full_page=True)


async def test_sign_in_and_chat_by_keyboard_alone(browsing: Browsing,
                                                  server: BrowserServer) -> None:
    await server.room("general")
    await server.make_user("uma")
    page = await browsing.page()
    await page.goto("/login")
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    await page.keyboard.press("Enter")
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Username")).to_be_focused()
    await page.keyboard.type("uma")
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Password")).to_be_focused()
    await page.keyboard.type("a sturdy passphrase 4 tests")
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(re.compile(r"/rooms$"))

    await page.goto("/rooms/general")
    await expect(page.locator("#conn-state")).to_have_attribute("data-state", "connected")
    composer = page.get_by_label("Message #general")
    await expect(composer).to_be_focused()  # ready to type on arrival
    await page.keyboard.type("first line")
    await page.keyboard.press("Shift+Enter")
    await page.keyboard.type("second line")
    await page.keyboard.press("Enter")
    # The line break is drawn as one (a <br>): read the text as rendered.
    await expect(page.locator("#messages .message[data-seq='1'] .text")).to_have_text(
        "first line\nsecond line", use_inner_text=True)
    await expect(composer).to_have_value("")
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name="Send")).to_be_focused()
    await page.keyboard.press("Shift+Tab")
    await page.keyboard.press("Shift+Tab")
    await expect(page.locator("#messages")).to_be_focused()  # the log scrolls by keyboard


async def test_rooms_list_shows_unread_counts(browsing: Browsing,
                                             server: BrowserServer) -> None:
    await server.room("general")
    random = await server.room("random", topic="Off topic")
    rita = await server.make_user("rita")
    sam = await server.make_user("sam")
    page = await browsing.page(rita)
    frames = Frames(page)
    await open_room(page, "random")  # joining makes rita a member
    await page.goto("/rooms")
    for k in (1, 2, 3):
        await server.post(random, sam, f"while rita looked elsewhere {k}", f"sam-{k}")
    await page.reload()
    entry = page.locator(f"#room-list li[data-room-id='{random}']")
    await expect(entry.locator(".unread")).to_have_text("3 unread")
    await expect(page.locator("#room-list .unread")).to_have_count(1)
    await page.screenshot(path=artifact("rooms-list.png"))
    await entry.get_by_role("link").click()
    await expect(page.locator("#messages .message")).to_have_count(3)
    await frames.until(lambda: frames.acked("read"))
    await page.goto("/rooms")
    await expect(page.locator("#room-list .unread")).to_have_count(0)
