"""The people's journeys, walked in a real Chromium: apply, approve, first login, chat."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import BrowserServer, Browsing, artifact, expect
from tests.browser.helpers import MESSAGE_TEXTS, expect_clipboard, expect_seqs, open_room
from tests.waiting import assert_eventually

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

NEW_PASSWORD = "correct horse battery staple 42"


async def test_apply_approve_first_login_and_live_chat(browsing: Browsing,
                                                       server: BrowserServer) -> None:
    admin = await server.admin()
    await server.room("general", topic="Everything and nothing")
    bob = await server.make_user("bob")

    # A visitor applies and gets a clear confirmation.
    applicant = await browsing.page()
    await applicant.goto("/")
    await applicant.get_by_role("link", name="Apply to join").first.click()
    await applicant.get_by_label("Username").fill("dana")
    await applicant.get_by_label("Display name").fill("Dana Scully")
    await applicant.get_by_label("Email").fill("dana@example.org")
    await applicant.get_by_label("Why would you like to join?").fill(
        "I coordinate the field team and we need a private channel.")
    await applicant.get_by_role("button", name="Send application").click()
    await expect(applicant.locator("#apply-done")).to_contain_text("waiting for an administrator")
    reference = await applicant.locator("#apply-reference").input_value()
    assert re.fullmatch(r"([A-Z2-7]{4}-){5}[A-Z2-7]{4}", reference)

    # The admin sees the pending count, approves and copies the one-time password.
    console = await browsing.context(cookie=await server.cookie_for(admin))
    await console.grant_permissions(["clipboard-read", "clipboard-write"])
    queue = await console.new_page()
    await queue.goto("/rooms")
    await expect(queue.locator("#nav-pending")).to_contain_text("1")
    await queue.locator("#nav-applications").click()
    card = queue.locator(".application[data-username='dana']")
    await expect(card).to_contain_text("Dana Scully")
    await expect(queue.locator("#pending-count")).to_have_text("1")
    await queue.screenshot(path=artifact("approval-queue.png"), full_page=True)
    await card.get_by_role("button", name="Approve").click()
    await expect(queue.get_by_role("heading", name="Account created")).to_be_visible()
    await expect(queue.get_by_role("alert")).to_contain_text("shown only once")
    one_time = queue.locator("#one-time-password")
    await expect(one_time).to_have_value(re.compile(r"^\S{12,}$"))
    password = await one_time.input_value()
    await queue.get_by_role("button", name="Copy").click()
    await expect(queue.get_by_role("button", name="Copied")).to_be_visible()
    await expect_clipboard(queue, password)
    copied = password
    await queue.screenshot(path=artifact("approved-one-time-password.png"))

    # The new member signs in and is made to choose a password first.
    await applicant.goto("/login")
    await applicant.get_by_label("Username").fill("dana")
    await applicant.get_by_label("Password").fill(copied)
    await applicant.get_by_role("button", name="Sign in", exact=True).click()
    await expect(applicant).to_have_url(re.compile(r"/account/password\?first=1$"))
    await expect(applicant.locator("#first-login")).to_be_visible()
    await applicant.goto("/rooms")  # nothing else is reachable yet
    await expect(applicant).to_have_url(re.compile(r"/account/password\?first=1$"))
    await applicant.get_by_label("One-time password").fill(copied)
    await applicant.get_by_label("New password", exact=True).fill("short")
    await expect(applicant.locator("#strength")).to_contain_text("too short")
    await applicant.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    await expect(applicant.locator("#strength")).to_contain_text("strong")
    await applicant.get_by_label("Repeat the new password").fill(NEW_PASSWORD)
    await applicant.get_by_role("button", name="Save password").click()
    await expect(applicant).to_have_url(re.compile(r"/rooms\?welcome=1$"))  # straight to chat
    await expect(applicant.locator("#welcome")).to_be_visible()

    # Into the room; a second person in another browser sees the message live.
    await applicant.locator("#room-list").get_by_role("link", name=re.compile("#general")).click()
    await expect(applicant.locator("#conn-state")).to_have_attribute("data-state", "connected")
    other = await browsing.page(bob)
    await open_room(other, "general")
    await expect(applicant.locator("#presence")).to_contain_text("Bob")
    await expect(other.locator("#presence")).to_contain_text("Dana Scully")

    await other.locator("#composer-text").press_sequentially("hi")
    await expect(applicant.locator("#typing")).to_have_text("Bob is typing…")
    await other.locator("#composer-text").fill("")

    composer = applicant.get_by_label("Message #general")
    await composer.fill("Hello from Dana")
    await composer.press("Enter")
    await expect(other.locator("#messages .message .text")).to_have_text(["Hello from Dana"])
    await expect(applicant.locator("#messages .message.pending")).to_have_count(0)
    await expect(applicant.locator("#messages .message[data-seq='1']")).to_contain_text(
        "Hello from Dana")
    await other.get_by_label("Message #general").fill("Welcome, Dana!")
    await other.get_by_role("button", name="Send").click()
    await expect(applicant.locator("#messages .message .text")).to_have_text(
        ["Hello from Dana", "Welcome, Dana!"])
    await expect_seqs(applicant, [1, 2])
    await expect_seqs(other, [1, 2])  # its own message too, once acked
    await applicant.screenshot(path=artifact("room.png"))

    # The one-time password is spent; the new password works.
    fresh = await browsing.page()
    await fresh.goto("/login")
    await fresh.get_by_label("Username").fill("dana")
    await fresh.get_by_label("Password").fill(NEW_PASSWORD)
    await fresh.get_by_role("button", name="Sign in", exact=True).click()
    await expect(fresh).to_have_url(re.compile(r"/rooms$"))


async def test_history_loads_as_you_scroll_up(browsing: Browsing,
                                              server: BrowserServer) -> None:
    room = await server.room("archive")
    carol = await server.make_user("carol")
    for k in range(1, 121):
        await server.post(room, carol, f"archived message {k}", f"seed-{k}")
    page = await browsing.page(carol)
    await open_room(page, "archive")
    messages = page.locator("#messages .message")
    await expect(messages).to_have_count(50)
    await expect(messages.last).to_contain_text("archived message 120")
    await expect(messages.last).to_be_in_viewport()

    await page.locator("#messages").evaluate("list => { list.scrollTop = 0; }")
    await expect(messages).to_have_count(100)
    # The reader's place is kept: the message that was at the top is still on screen.
    await expect(page.locator(".message[data-seq='71']")).to_be_in_viewport()
    await assert_eventually(
        lambda: page.locator("#messages").evaluate("list => list.scrollTop > 0"), True)

    # The button works from the keyboard too. Focus it without scrolling: scrolling the
    # list to the top would load the rest by itself and race the key press.
    await page.get_by_role("button", name="Load older messages").evaluate(
        "button => button.focus({preventScroll: true})")
    await page.keyboard.press("Enter")
    await expect(messages).to_have_count(120)
    await expect(page.locator(".history-edge")).to_contain_text("beginning of #archive")
    await expect(page.get_by_role("button", name="Load older messages")).to_be_hidden()
    await expect_seqs(page, list(range(1, 121)))


async def test_your_message_is_pending_until_acknowledged(browsing: Browsing,
                                                          server: BrowserServer) -> None:
    await server.room("general")
    erin = await server.make_user("erin")
    page = await browsing.page(erin)
    await open_room(page, "general")
    # Hold the acknowledgement back: the socket is cut before the message can go out.
    await page.context.set_offline(True)
    await expect(page.locator("#conn-state")).not_to_have_attribute("data-state", "connected")
    await page.get_by_label("Message #general").fill("sent while offline")
    await page.get_by_label("Message #general").press("Enter")
    pending = page.locator("#messages .message.pending")
    await expect(pending).to_have_count(1)
    await expect(pending).to_contain_text("sent while offline")
    await page.context.set_offline(False)
    await expect(page.locator("#conn-state")).to_have_attribute("data-state", "connected",
                                                                timeout=15_000)
    await expect(page.locator("#messages .message.pending")).to_have_count(0)
    await expect(page.locator("#messages .message[data-seq='1'] .text")).to_have_text(
        "sent while offline")
    await expect(page.locator(MESSAGE_TEXTS)).to_have_text(["sent while offline"])
    browsing.allow = re.compile(r"ERR_INTERNET_DISCONNECTED|WebSocket connection to .* failed")
