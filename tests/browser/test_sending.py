"""Sending from the room page: refusals explained, retries idempotent, hostile text inert."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from streamzy.storage.models import Message
from tests.browser.conftest import BrowserServer, Browsing, expect
from tests.browser.helpers import MESSAGE_TEXTS, expect_seqs, open_room

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

HOSTILE = ["<img src=x onerror=alert(1)>", "<svg onload=alert(2)>",
           '"><script>alert(3)</script>', "<a href=\"javascript:alert(4)\">click</a>"]


@pytest.mark.settings(rate_messages="3/m")
async def test_blocked_and_rate_limited_sends_are_explained_and_retried(
        browsing: Browsing, server: BrowserServer) -> None:
    await server.room("general")
    jay = await server.make_user("jay")
    page = await browsing.page(jay)
    await open_room(page, "general")
    composer = page.get_by_label("Message #general")
    toast = page.locator("#toast")
    failed = page.locator("#messages .message.failed")

    async def say(text: str) -> None:
        await composer.fill(text)
        await composer.press("Enter")

    await say("<script>alert('hi')</script>")
    # Refused for what it says: no Retry could help, so the text is back in the composer.
    await expect(composer).to_have_value("<script>alert('hi')</script>")
    await expect(toast).to_be_visible()
    await expect(toast).to_contain_text("looks like HTML markup")
    await expect(toast).to_contain_text("back in the message box")
    await expect(page.locator("#messages .message")).to_have_count(0)
    await composer.fill("")

    await say("one")
    await say("two")
    await expect(page.locator("#messages .message[data-seq]")).to_have_count(2)
    await say("three")
    await expect(failed).to_have_count(1)
    await expect(failed).to_contain_text("three")
    await expect(failed).to_contain_text(re.compile(r"sending too fast\. Try again in \d+ s"))
    await expect(toast).to_contain_text(re.compile(r"Try again in \d+ s"))
    await expect(failed).to_have_attribute("data-client-msg-id", re.compile(r"\S"))
    client_msg_id = await failed.get_attribute("data-client-msg-id")
    await failed.get_by_role("button", name="Retry").click()  # still too fast
    await expect(failed).to_have_count(1)
    await expect(failed).to_contain_text("sending too fast")

    server.clock.advance(60)
    await failed.get_by_role("button", name="Retry").click()
    await expect(failed).to_have_count(0)
    await expect(page.locator(MESSAGE_TEXTS)).to_have_text(["one", "two", "three"])
    # The retried message shows its text before its ack sets data-seq: wait for that too.
    await expect_seqs(page, [1, 2, 3])
    async with server.services.db.unit() as db:
        stored = (await db.execute(select(Message).where(Message.seq == 3))).scalar_one()
    assert stored.client_msg_id == client_msg_id  # the retry reused the same id


@pytest.mark.settings(suspicious_messages="flag")
async def test_hostile_markup_is_stored_and_rendered_as_inert_text(
        browsing: Browsing, server: BrowserServer) -> None:
    await server.room("general")
    kim = await server.make_user("kim")
    lee = await server.make_user("lee")
    sender = await browsing.page(kim)
    reader = await browsing.page(lee)
    await open_room(sender, "general")
    await open_room(reader, "general")
    composer = sender.get_by_label("Message #general")
    for text in HOSTILE:
        await composer.fill(text)
        await composer.press("Enter")
    await expect(reader.locator(MESSAGE_TEXTS)).to_have_text(HOSTILE)
    await expect(sender.locator("#messages .message[data-seq]")).to_have_count(len(HOSTILE))
    await reader.reload()  # and from history, after a fresh load
    await expect(reader.locator(MESSAGE_TEXTS)).to_have_text(HOSTILE)
    for page in (sender, reader):
        await expect(page.locator(MESSAGE_TEXTS)).to_have_text(HOSTILE)
        await expect(page.locator("#messages img, #messages svg, #messages script, "
                                  "#messages a, #messages iframe")).to_have_count(0)
    assert browsing.dialogs == []  # checked again at teardown, with console errors


async def test_a_blocked_message_comes_back_to_be_edited(
        browsing: Browsing, server: BrowserServer) -> None:
    await server.room("general")
    ana = await server.make_user("ana")
    page = await browsing.page(ana)
    await open_room(page, "general")
    composer = page.get_by_label("Message #general")
    toast = page.locator("#toast")
    prose = "My favourite language? JavaScript: it runs everywhere."
    await composer.fill(prose)
    await composer.press("Enter")
    await expect(page.locator("#messages .message[data-seq] .text")).to_have_text([prose])

    markup = 'Press <button onclick="save()"> to save'
    await composer.fill(markup)
    await composer.press("Enter")
    await expect(composer).to_have_value(markup)
    await expect(toast).to_contain_text("`backticks`")
    await expect(page.locator("#messages .message.failed")).to_have_count(0)

    # A refusal that arrives while newer text is being typed keeps its bubble, with Edit.
    await page.evaluate("""() => {
        const input = document.getElementById("composer-text");
        const send = input.form.requestSubmit.bind(input.form);
        send();  // sends the markup again; the newer text below is typed before the answer
        input.value = "newer";
    }""")
    refused = page.locator("#messages .message.failed")
    await expect(refused).to_have_count(1)
    await expect(refused.get_by_role("button", name="Retry")).to_have_count(0)
    await refused.get_by_role("button", name="Edit").click()
    await expect(refused).to_have_count(0)
    await expect(composer).to_have_value(markup + "\n\nnewer")

    await composer.fill('Press `<button onclick="save()">` to save')
    await composer.press("Enter")
    # Rendered as Markdown: the markup is a code span, shown as the characters it is.
    await expect(page.locator("#messages .message[data-seq] .text")).to_have_text(
        [prose, 'Press <button onclick="save()"> to save'])
    await expect(page.locator("#messages .message[data-seq] .text code")).to_have_text(
        ['<button onclick="save()">'])
    await expect(composer).to_have_value("")


async def test_right_to_left_text_keeps_its_direction_inside_its_message(
        browsing: Browsing, server: BrowserServer) -> None:
    await server.room("general")
    dan = await server.make_user("dan")
    page = await browsing.page(dan)
    await open_room(page, "general")
    composer = page.get_by_label("Message #general")
    rtl = "\u05e9\u05dc\u05d5\u05dd \u2067world\u2069!"
    await composer.fill(rtl)
    await composer.press("Enter")
    text = page.locator("#messages .message[data-seq] .text")
    await expect(text).to_have_text([rtl])
    assert await text.get_attribute("dir") == "auto"
    spoof = "access\u202e\u2066 level\u2069\u2066"
    await composer.fill(spoof)
    await composer.press("Enter")
    await expect(composer).to_have_value(spoof)
    await expect(page.locator("#toast")).to_contain_text("direction overrides")
