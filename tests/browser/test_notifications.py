"""Hearing about other rooms: mentions highlighted, live unread and mention badges for rooms
one is not looking at, the tab title and favicon, and opt-in browser notifications that can
leave the message text out."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.browser.conftest import BrowserServer, Browsing, expect
from tests.browser.helpers import Frames, open_room
from tests.waiting import assert_eventually

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

# Records every notification the page creates instead of showing it.
CAPTURE = """(() => {
  window.__shown = [];
  const Real = window.Notification;
  class Captured {
    constructor(title, options) {
      window.__shown.push({ title, body: (options && options.body) || "" });
    }
    addEventListener() {}
    close() {}
    static get permission() { return Real.permission; }
    static requestPermission(...args) { return Real.requestPermission(...args); }
  }
  window.Notification = Captured;
})()"""


async def say(page: Any, text: str, label: str = "Message #general") -> None:
    composer = page.get_by_label(label)
    await composer.fill(text)
    await composer.press("Enter")
    await expect(page.locator("#messages .message[data-seq] .text", has_text=text)).to_have_count(1)


def sidebar_link(page: Any, name: str) -> Any:
    return page.locator(".sidebar a[data-room-id]", has_text=name)


def badge(text: str) -> re.Pattern[str]:
    """A sidebar badge reads ", 2 unread" to a screen reader and shows "2"."""
    return re.compile(rf"^,\s*{re.escape(text)}$")


async def shown(page: Any) -> list[dict[str, str]]:
    return list(await page.evaluate("window.__shown"))


async def test_mentions_light_up_badges_title_and_the_message(browsing: Browsing,
                                                              server: BrowserServer) -> None:
    await server.room("general")
    await server.room("random")
    ana, bob = await server.make_user("ana"), await server.make_user("bob")
    writer, reader = await browsing.page(ana), await browsing.page(bob)
    await open_room(reader, "general")  # a member of both
    await open_room(reader, "random")
    await open_room(writer, "general")
    await expect(reader).to_have_title("#random · Streamzy")
    icon = reader.locator("link[rel=icon]")
    await expect(icon).to_have_attribute("href", "/static/favicon.svg")

    await say(writer, "@bob can you look at the build?")
    general = sidebar_link(reader, "#general")
    await expect(general.locator(".mention-count")).to_have_text(badge("@1 mention"))
    await expect(general.locator(".unread")).to_have_text(badge("1 unread"))
    await expect(reader).to_have_title("(1) #random · Streamzy")
    await expect(icon).to_have_attribute("href", re.compile(r"^data:image/png;base64,"))

    await say(writer, "no mention here")  # unread grows (activity), mentions do not
    await expect(general.locator(".unread")).to_have_text(badge("2 unread"))
    await expect(general.locator(".mention-count")).to_have_text(badge("@1 mention"))
    await expect(reader).to_have_title("(2) #random · Streamzy")

    await general.click()
    await expect(reader.locator("#conn-state")).to_have_attribute("data-state", "connected")
    mentioned = reader.locator("#messages .message.mentions-me")
    await expect(mentioned).to_have_count(1)
    await expect(mentioned.locator(".mention.me")).to_have_text("@bob")
    await expect(reader).to_have_title("#general · Streamzy")
    await expect(reader.locator("#messages > .unread-line + .message .text")).to_have_text(
        "@bob can you look at the build?")
    # Anyone else named is styled too, but not as "me"; @room highlights for everyone.
    await say(writer, "@ana and @room: standup in 5")
    latest = reader.locator("#messages .message[data-seq]").last
    await expect(latest).to_have_class(re.compile(r"\bmentions-me\b"))
    await expect(latest.locator(".mention")).to_have_text(["@ana", "@room"])
    await expect(latest.locator(".mention.me")).to_have_text(["@room"])
    # An address is not a mention.
    await say(writer, "mail ops@example.org")
    await expect(reader.locator("#messages .message[data-seq]").last.locator(".mention")).to_have_count(0)


async def test_notifications_for_mentions_and_dms_can_hide_the_text(
        browsing: Browsing, server: BrowserServer) -> None:
    await server.room("general")
    await server.room("random")
    ana, bob = await server.make_user("ana"), await server.make_user("bob")
    writer, reader = await browsing.page(ana), await browsing.page(bob)
    for page in (writer, reader):
        await page.add_init_script(CAPTURE)
        await page.context.grant_permissions(["notifications"])
    await open_room(reader, "general")
    await open_room(reader, "random")
    await reader.locator(".sidebar-settings summary").click()
    await reader.get_by_label("Notify me of mentions and direct messages").select_option("on")
    await open_room(writer, "general")
    await writer.locator(".sidebar-settings summary").click()
    await writer.get_by_label("Notify me of mentions and direct messages").select_option("on")

    await say(writer, "@bob the build is red")
    await assert_eventually(lambda: shown(reader), [
        {"title": "Ana mentioned you in #general", "body": "@bob the build is red"}])

    await reader.get_by_label("Notify me of mentions and direct messages").select_option("hide")
    await say(writer, "@bob the secret plans are in the drawer")
    await assert_eventually(lambda: len_of(reader), 2)
    hidden = (await shown(reader))[1]
    assert hidden == {"title": "Streamzy", "body": "New mention in #general"}
    assert "secret" not in json.dumps(hidden) and "Ana" not in json.dumps(hidden)

    # A direct message: the reader lists it after a reload, and hears of the next one.
    await writer.locator("#dm-new").click()
    await writer.get_by_label("Who? Usernames, comma separated").fill("bob")
    await writer.get_by_role("button", name="Start").click()
    await expect(writer.locator("#room-title")).to_contain_text("Bob")
    await expect(writer.locator("#conn-state")).to_have_attribute("data-state", "connected")
    await say(writer, "first private word", "Message Bob")
    frames = Frames(reader)
    await reader.reload()
    await frames.until(lambda: frames.acked("watch"))  # listening to the DM now
    await expect(sidebar_link(reader, "Ana").locator(".unread")).to_have_text(badge("1 unread"))
    await say(writer, "the private detail", "Message Bob")
    # (the reload started a new record of notifications)
    await assert_eventually(lambda: shown(reader), [
        {"title": "Streamzy", "body": "New direct message"}])
    await expect(sidebar_link(reader, "Ana").locator(".unread")).to_have_text(badge("2 unread"))
    await reader.locator(".sidebar-settings summary").click()
    await reader.get_by_label("Notify me of mentions and direct messages").select_option("on")
    await say(writer, "now with text", "Message Bob")
    await assert_eventually(lambda: len_of(reader), 2)
    assert (await shown(reader))[1] == {"title": "Ana (direct message)", "body": "now with text"}
    assert await shown(writer) == []  # never told about one's own messages

    await reader.get_by_label("Notify me of mentions and direct messages").select_option("off")
    await say(writer, "@bob are you there?", "Message Bob")
    await expect(sidebar_link(reader, "Ana").locator(".unread")).to_have_text(badge("4 unread"))
    assert len(await shown(reader)) == 2


async def len_of(page: Any) -> int:
    return len(await shown(page))


HIDE = """() => {
  Object.defineProperty(document, "visibilityState", { value: "hidden", configurable: true });
  document.dispatchEvent(new Event("visibilitychange"));
}"""
SHOW = """() => {
  Object.defineProperty(document, "visibilityState", { value: "visible", configurable: true });
  document.dispatchEvent(new Event("visibilitychange"));
}"""


async def test_a_hidden_tab_counts_new_messages_under_a_line(browsing: Browsing,
                                                             server: BrowserServer) -> None:
    room = await server.room("general")
    ana, bob = await server.make_user("ana"), await server.make_user("bob")
    await server.post(room, bob, "seen before", "b0")
    page = await browsing.page(ana)
    frames = Frames(page)
    await open_room(page, "general")
    await frames.until(lambda: frames.acked("read"))
    await page.evaluate(HIDE)
    await server.post(room, bob, "while away 1", "b1")
    await server.post(room, bob, "`@ana` in code is no mention", "b2")
    await expect(page.locator("#messages > .unread-line + .message .text")).to_have_text(
        "while away 1")
    await expect(page).to_have_title("(2) #general · Streamzy")
    code = page.locator("#messages .message[data-seq]").last
    await expect(code.locator("code")).to_have_text("@ana")
    await expect(code.locator(".mention")).to_have_count(0)
    reads = len([f for f in frames.sent if '"read"' in f])
    await page.evaluate(SHOW)
    await expect(page).to_have_title("#general · Streamzy")
    await frames.until(lambda: len([f for f in frames.sent if '"read"' in f]) > reads)
    assert '"seq":3' in [f for f in frames.sent if '"read"' in f][-1]
    await expect(page.locator("#messages > .unread-line")).to_have_count(1)  # kept to read by
