"""How a conversation reads in the browser: messages grouped by sender, day separators,
initials avatars, the "New messages" line, private-room locks, the message toolbar by
keyboard, and the notification setting (asked for only on a click, remembered)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from streamzy.guards.context import SYSTEM
from tests.browser.conftest import BrowserServer, Browsing, expect
from tests.browser.helpers import MESSAGE_TEXTS, Frames, open_room

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

MESSAGES = "#messages > .message"


async def test_messages_group_by_sender_and_split_by_day(browsing: Browsing,
                                                         server: BrowserServer) -> None:
    # The server's clock only moves forward (sessions and limits read it); the browser is
    # told the same "now", in UTC, so "Today" and "Yesterday" are the server's days.
    base = server.clock.now().replace(hour=12, minute=0, second=0)
    room = await server.room("general")
    ana, bob = await server.make_user("ana"), await server.make_user("bob")
    server.clock.set(base)
    await server.post(room, ana, "yesterday one", "y1")
    server.clock.advance(60)
    await server.post(room, ana, "yesterday two, a minute later", "y2")
    server.clock.advance(60)
    await server.post(room, bob, "bob answers", "y3")
    now = base + timedelta(days=1)
    server.clock.set(now - timedelta(minutes=30))
    await server.post(room, bob, "today, half an hour ago", "t1")
    server.clock.set(now - timedelta(minutes=20))  # ten minutes later: a new group
    await server.post(room, bob, "today, ten minutes after that", "t2")
    server.clock.set(now)
    page = await browsing.page(ana, timezone_id="UTC")
    await page.clock.set_fixed_time(now)
    await open_room(page, "general")
    await expect(page.locator(MESSAGE_TEXTS)).to_have_text(
        ["yesterday one", "yesterday two, a minute later", "bob answers",
         "today, half an hour ago", "today, ten minutes after that"])
    await expect(page.locator("#messages > .day-separator")).to_have_text(["Yesterday", "Today"])
    # Each separator sits right before the first message of its day.
    firsts = await page.locator("#messages > .day-separator + .message .text").all_text_contents()
    assert firsts == ["yesterday one", "today, half an hour ago"]
    items = page.locator(MESSAGES)
    grouped = await items.evaluate_all("els => els.map(e => e.classList.contains('grouped'))")
    assert grouped == [False, True, False, False, False]

    # A grouped message shows no name or avatar, but its time on hover; the first keeps both.
    second, first = items.nth(1), items.nth(0)
    hidden = "e => e.getBoundingClientRect().width <= 1"  # visually hidden, still read out
    assert await second.locator(".meta").evaluate(hidden)
    await expect(second.locator(".gutter .avatar")).not_to_be_visible()
    await expect(second.locator(".gutter-time")).not_to_be_visible()
    await second.hover()
    await expect(second.locator(".gutter-time")).to_be_visible()
    await expect(first.locator(".author")).to_have_text("Ana")
    avatar = first.locator(".gutter .avatar")
    await expect(avatar).to_have_text("A")
    await expect(avatar).to_have_class(re.compile(r"\bavatar-c[0-7]\b"))
    await expect(items.nth(2).locator(".gutter .avatar")).to_have_text("B")
    # The same person always gets the same colour; it is a class, never an inline style.
    classes = await page.locator("#messages .avatar").evaluate_all(
        "els => els.map(e => [e.textContent, e.className, e.getAttribute('style')])")
    assert {c for t, c, _ in classes if t == "B"} == {classes[2][1]}
    assert all(style is None for _, _, style in classes)

    # A message sent now joins today's group of the sender's own messages.
    composer = page.get_by_label("Message #general")
    await composer.fill("and me, now")
    await composer.press("Enter")
    await expect(items.last).to_have_attribute("data-seq", "6")
    await expect(page.locator("#messages > .day-separator")).to_have_text(["Yesterday", "Today"])
    await expect(items.last).not_to_have_class(re.compile(r"\bgrouped\b"))
    await composer.fill("twice")
    await composer.press("Enter")
    await expect(items.last).to_have_class(re.compile(r"\bgrouped\b"))


async def test_new_messages_line_marks_what_arrived_since_the_last_visit(
        browsing: Browsing, server: BrowserServer) -> None:
    room = await server.room("general")
    cy, di = await server.make_user("cyd"), await server.make_user("dia")
    await server.post(room, di, "read before", "r1")
    page = await browsing.page(cy)
    frames = Frames(page)
    await open_room(page, "general")  # reads everything so far
    await expect(page.locator(MESSAGE_TEXTS)).to_have_text(["read before"])
    await expect(page.locator(".unread-line")).to_have_count(0)
    await frames.until(lambda: frames.acked("read"))
    await page.goto("/rooms")
    for k in (1, 2):
        await server.post(room, di, f"new {k}", f"n{k}")
    await open_room(page, "general")
    await expect(page.locator(MESSAGE_TEXTS)).to_have_text(["read before", "new 1", "new 2"])
    line = page.locator("#messages > .unread-line")
    await expect(line).to_have_text("New messages")
    await expect(page.locator("#messages > .unread-line + .message .text")).to_have_text("new 1")
    # Sending clears it: the reader is caught up.
    await page.get_by_label("Message #general").fill("caught up")
    await page.get_by_label("Message #general").press("Enter")
    await expect(line).to_have_count(0)


async def test_private_rooms_carry_a_lock_in_the_sidebar_and_header(
        browsing: Browsing, server: BrowserServer) -> None:
    await server.room("general")
    secret = await server.room("secret", private=True)
    eve = await server.make_user("eve")
    await server.services.rooms.invite((await server.admin()).id, secret, "eve", SYSTEM)
    page = await browsing.page(eve)
    await open_room(page, "secret")
    link = page.locator(".sidebar a[data-room-id]", has_text="#secret")
    await expect(link.locator(".lock")).to_be_visible()
    await expect(link).to_contain_text("(private)")  # for screen readers
    await expect(page.locator(".sidebar a[data-room-id]", has_text="#general")
                 .locator(".lock")).to_have_count(0)
    await expect(page.locator("#room-title .lock")).to_be_visible()


async def test_message_toolbar_is_reachable_by_keyboard(browsing: Browsing,
                                                        server: BrowserServer) -> None:
    room = await server.room("general")
    fay, gus = await server.make_user("fay"), await server.make_user("gus")
    await server.post(room, gus, "from gus", "g1")
    await server.post(room, fay, "from fay", "f1")
    page = await browsing.page(fay)
    await open_room(page, "general")
    await expect(page.locator(MESSAGE_TEXTS)).to_have_text(["from gus", "from fay"])
    log = page.locator("#messages")
    await log.focus()
    await page.keyboard.press("ArrowUp")  # from the log: the newest message
    mine, theirs = page.locator(MESSAGES).nth(1), page.locator(MESSAGES).nth(0)
    await expect(mine).to_be_focused()
    bar = mine.get_by_role("toolbar", name="Message actions")
    await expect(bar).to_be_visible()
    await expect(bar.get_by_role("button")).to_have_count(4)
    for name in ("React", "Reply", "Edit", "Delete"):
        await expect(bar.get_by_role("button", name=name)).to_be_visible()
    await page.keyboard.press("Tab")
    await expect(bar.get_by_role("button", name="React")).to_be_focused()
    await page.keyboard.press("Shift+Tab")
    await expect(mine).to_be_focused()
    await page.keyboard.press("ArrowUp")
    await expect(theirs).to_be_focused()
    others = theirs.get_by_role("toolbar", name="Message actions")
    await expect(others.get_by_role("button", name="Report")).to_be_visible()
    await expect(others.get_by_role("button", name="Edit")).to_have_count(0)
    await expect(others.get_by_role("button", name="Delete")).to_have_count(0)
    # Only the focused message has Tab stops: from the composer, Shift+Tab x2 is the log.
    await page.get_by_role("button", name="Send").focus()
    await page.keyboard.press("Shift+Tab")
    await page.keyboard.press("Shift+Tab")
    await expect(log).to_be_focused()

    # Reply mode by keyboard: Escape leaves it; the picker opens and closes by keyboard.
    await page.keyboard.press("ArrowUp")
    await expect(mine).to_be_focused()
    await page.keyboard.press("Tab")
    await page.keyboard.press("Tab")
    await expect(bar.get_by_role("button", name="Reply")).to_be_focused()
    await page.keyboard.press("Enter")
    composer = page.get_by_label("Message #general")
    await expect(composer).to_be_focused()
    await expect(page.locator("#composer-mode")).to_contain_text("Replying to Fay")
    await page.keyboard.press("Escape")
    await expect(page.locator("#composer-mode")).to_be_hidden()
    await mine.focus()
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")  # React
    picker = page.get_by_role("menu", name="Pick a reaction")
    await expect(picker).to_be_visible()
    await expect(picker.get_by_role("menuitem")).to_have_count(8)
    await expect(picker.get_by_role("menuitem").first).to_be_focused()
    await page.keyboard.press("ArrowRight")
    await expect(picker.get_by_role("menuitem").nth(1)).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(picker).to_have_count(0)
    await expect(bar.get_by_role("button", name="React")).to_be_focused()


async def test_delete_asks_in_page_and_cancel_keeps_the_message(browsing: Browsing,
                                                                server: BrowserServer) -> None:
    room = await server.room("general")
    hal = await server.make_user("hal")
    await server.post(room, hal, "keep me", "k1")
    page = await browsing.page(hal)
    await open_room(page, "general")
    item = page.locator(MESSAGES).first
    await item.hover()
    await item.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog", name="Delete this message?")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("cannot be undone")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_be_hidden()
    await expect(page.locator(MESSAGE_TEXTS)).to_have_text(["keep me"])
    await item.hover()
    await item.get_by_role("button", name="Delete").click()
    await page.keyboard.press("Escape")  # a native modal dialog: Escape cancels too
    await expect(dialog).to_be_hidden()
    await expect(page.locator(MESSAGE_TEXTS)).to_have_text(["keep me"])
    assert browsing.dialogs == []  # never window.confirm


async def test_notification_setting_asks_permission_on_click_and_is_remembered(
        browsing: Browsing, server: BrowserServer) -> None:
    await server.room("general")
    ivy = await server.make_user("ivy")
    page = await browsing.page(ivy)
    await page.add_init_script("""(() => {
        window.__asked = 0;
        const Real = window.Notification;
        const ask = Real.requestPermission;
        Real.requestPermission = function () { window.__asked += 1; return ask.apply(Real, arguments); };
    })()""")
    await open_room(page, "general")
    assert await page.evaluate("window.__asked") == 0  # nothing asked on load
    settings = page.locator(".sidebar-settings")
    await settings.locator("summary").click()
    select = page.get_by_label("Notify me of mentions and direct messages")
    await expect(select).to_have_value("off")
    await select.select_option("on")  # not granted (the headless browser answers no)
    await expect(page.locator("#notify-note")).to_contain_text("not allowed")
    await expect(select).to_have_value("off")
    assert await page.evaluate("window.__asked") == 1  # asked, on the choice
    await page.context.grant_permissions(["notifications"])
    await select.select_option("hide")
    await expect(settings.locator("summary")).to_contain_text("on, content hidden")
    await page.reload()
    await expect(page.locator("#conn-state")).to_have_attribute("data-state", "connected")
    await expect(page.get_by_label("Notify me of mentions and direct messages")).to_have_value("hide")
    assert await page.evaluate("localStorage.getItem('streamzy.notify')") == "hide"
