"""Direct messages from the room page: the sidebar's "New message" form opens (or reopens)
the conversation, its header names the people, and nobody else can see or open it."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import BrowserServer, Browsing, expect
from tests.browser.helpers import MESSAGE_TEXTS, open_room

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


async def test_opening_a_dm_twice_reaches_the_same_private_room(browsing: Browsing,
                                                                 server: BrowserServer) -> None:
    await server.room("general")
    ana, bob, cyd = [await server.make_user(n) for n in ("ana", "bob", "cyd")]
    page = await browsing.page(ana)
    await open_room(page, "general")
    dms = page.locator("#dm-links")
    await expect(dms.locator("a")).to_have_count(0)
    form = page.locator("#dm-form")
    await expect(form).to_be_hidden()
    await page.get_by_role("button", name="New message").click()
    await expect(page.get_by_role("button", name="New message")).to_have_attribute(
        "aria-expanded", "true")
    field = page.get_by_label("Who? Usernames, comma separated")
    await expect(field).to_be_focused()

    await field.fill("nobody-here")
    await page.get_by_role("button", name="Start").click()
    await expect(page.locator("#dm-error")).to_have_text(re.compile(r"\S"))
    await expect(page).to_have_url(re.compile(r"/rooms/general$"))

    await field.fill("@Bob")
    await page.get_by_role("button", name="Start").click()
    await expect(page).not_to_have_url(re.compile(r"/rooms/general$"))
    dm_url = page.url
    await expect(page.locator("#conn-state")).to_have_attribute("data-state", "connected")
    await expect(page.locator("#room-title")).to_have_text("BBob")  # an avatar, then the name
    await expect(page.locator("#room-title .dm-names")).to_have_text("Bob")
    await expect(page.locator("#room-title")).not_to_contain_text("#")
    await expect(page).to_have_title("Bob · Streamzy")
    active = dms.locator("a[aria-current=page]")
    await expect(active).to_have_text("Bob")
    await expect(page.locator(".history-edge")).to_contain_text("beginning of your conversation")
    composer = page.get_by_label("Message Bob")
    await composer.fill("hi Bob, just us")
    await composer.press("Enter")
    await expect(page.locator("#messages .message[data-seq]")).to_have_count(1)

    # Opening it again (from another room) finds the same conversation.
    await open_room(page, "general")
    await page.get_by_role("button", name="New message").click()
    await page.get_by_label("Who? Usernames, comma separated").fill("bob")
    await page.get_by_label("Who? Usernames, comma separated").press("Enter")
    await expect(page).to_have_url(dm_url)
    await expect(page.locator(MESSAGE_TEXTS)).to_have_text(["hi Bob, just us"])

    # Bob lists it under Direct messages by Ana's name, with the unread count.
    other = await browsing.page(bob)
    await open_room(other, "general")
    link = other.locator("#dm-links a", has_text="Ana")
    await expect(link.locator(".unread")).to_have_text(re.compile(r"1 unread$"))
    await expect(other.locator("#room-links")).not_to_contain_text("Ana")
    await link.click()
    await expect(other).to_have_url(dm_url)
    await expect(other.locator("#room-title .dm-names")).to_have_text("Ana")
    await expect(other.locator(MESSAGE_TEXTS)).to_have_text(["hi Bob, just us"])

    # Cyd sees nothing of it and cannot open it.
    third = await browsing.page(cyd)
    await open_room(third, "general")
    await expect(third.locator("#dm-links a")).to_have_count(0)
    response = await third.goto(dm_url)
    assert response is not None and response.status == 404
    browsing.allow = re.compile(r"status of 404")
