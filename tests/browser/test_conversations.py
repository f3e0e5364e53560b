"""Conversations in the browser, two or three people at once against the real server:
edits (ArrowUp), deletes, replies, reactions, and a reader who was offline meanwhile."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import BrowserServer, Browsing, expect
from tests.browser.helpers import MESSAGE_TEXTS, open_room

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

MESSAGES = "#messages > .message"
DELETED = "This message was deleted."
OFFLINE_NOISE = re.compile(r"ERR_INTERNET_DISCONNECTED|WebSocket connection to .* failed")


def message(page: Any, text: str) -> Any:
    """The message (confirmed: it has an id) whose text is ``text``."""
    return page.locator(f"{MESSAGES}[data-id]").filter(
        has=page.locator(".text", has_text=re.compile(f"^{re.escape(text)}$")))


async def say(page: Any, text: str, room: str = "#general") -> None:
    composer = page.get_by_label(f"Message {room}")
    await composer.fill(text)
    await composer.press("Enter")
    await expect(message(page, text)).to_have_count(1)


async def act(page: Any, item: Any, action: str) -> None:
    await item.hover()
    await item.get_by_role("toolbar", name="Message actions").get_by_role(
        "button", name=action).click()


async def test_edit_by_arrow_up_shows_on_both_clients(browsing: Browsing,
                                                      server: BrowserServer) -> None:
    await server.room("general")
    ana, bob = await server.make_user("ana"), await server.make_user("bob")
    writer, reader = await browsing.page(ana), await browsing.page(bob)
    await open_room(writer, "general")
    await open_room(reader, "general")
    await say(writer, "teh first")
    await say(writer, "teh second")
    await expect(reader.locator(MESSAGE_TEXTS)).to_have_text(["teh first", "teh second"])

    composer = writer.get_by_label("Message #general")
    await composer.fill("a draft")
    await composer.press("ArrowUp")  # not empty: no edit
    await expect(writer.locator("#composer-mode")).to_be_hidden()
    await composer.fill("")
    await composer.press("ArrowUp")  # empty: edits my last message
    mode = writer.locator("#composer-mode")
    await expect(mode).to_contain_text("Editing message")
    await expect(composer).to_have_value("teh second")
    await expect(message(writer, "teh second")).to_have_class(re.compile(r"\bediting\b"))
    await composer.fill("changed my mind")
    await composer.press("Escape")  # cancels: nothing changes, the composer is as it was
    await expect(mode).to_be_hidden()
    await expect(composer).to_have_value("")
    await expect(writer.locator(MESSAGE_TEXTS)).to_have_text(["teh first", "teh second"])

    await composer.press("ArrowUp")
    await composer.fill("the second")
    await composer.press("Enter")
    await expect(mode).to_be_hidden()
    await expect(composer).to_have_value("")
    for page in (writer, reader):
        await expect(page.locator(MESSAGE_TEXTS)).to_have_text(["teh first", "the second"])
        edited = message(page, "the second").locator(".edited")
        await expect(edited).to_have_text("(edited)")
        await expect(edited).to_have_attribute("title", re.compile(r"^Edited "))
    await expect(message(reader, "teh first").locator(".edited")).to_have_count(0)

    # The toolbar's Edit works on an older message too, and Cancel leaves edit mode.
    await act(writer, message(writer, "teh first"), "Edit")
    await expect(composer).to_have_value("teh first")
    await mode.get_by_role("button", name="Cancel").click()
    await expect(mode).to_be_hidden()
    await act(writer, message(writer, "teh first"), "Edit")
    await composer.fill("the first")
    await writer.get_by_role("button", name="Send").click()
    await expect(reader.locator(MESSAGE_TEXTS)).to_have_text(["the first", "the second"])
    # Someone else's message offers no Edit.
    await reader.get_by_label("Message #general").press("ArrowUp")
    await expect(reader.locator("#composer-mode")).to_be_hidden()
    theirs = message(reader, "the first")
    await theirs.hover()
    await expect(theirs.get_by_role("button", name="Edit")).to_have_count(0)


async def test_delete_leaves_a_tombstone_for_everyone(browsing: Browsing,
                                                      server: BrowserServer) -> None:
    room = await server.room("general")
    cal, dee = await server.make_user("cal"), await server.make_user("dee")
    admin = await server.admin()
    await server.post(room, dee, "dee's message", "d1")
    writer, reader = await browsing.page(cal), await browsing.page(dee)
    await open_room(writer, "general")
    await open_room(reader, "general")
    await say(writer, "oops, wrong room")
    await say(writer, "this one stays")
    await expect(reader.locator(MESSAGE_TEXTS)).to_have_text(
        ["dee's message", "oops, wrong room", "this one stays"])
    # Not mine and not a moderator: no Delete on Dee's message.
    await writer.locator(MESSAGES).first.hover()
    await expect(writer.locator(MESSAGES).first.get_by_role("button", name="Delete")).to_have_count(0)

    await act(writer, message(writer, "oops, wrong room"), "Delete")
    dialog = writer.get_by_role("dialog", name="Delete this message?")
    await dialog.get_by_role("button", name="Delete").click()
    for page in (writer, reader):
        await expect(page.locator(MESSAGE_TEXTS)).to_have_text(
            ["dee's message", DELETED, "this one stays"])
        tomb = page.locator(f"{MESSAGES}.deleted")
        await expect(tomb).to_have_count(1)
        await tomb.hover()
        await expect(tomb.locator(".actions, .reactions, .edited")).to_have_count(0)
    # ArrowUp now edits the newest message that still exists.
    await writer.get_by_label("Message #general").press("ArrowUp")
    await expect(writer.get_by_label("Message #general")).to_have_value("this one stays")
    await writer.get_by_label("Message #general").press("Escape")

    # A moderator (an admin, in a public room) may delete anyone's message.
    mod = await browsing.page(admin)
    await open_room(mod, "general")
    await act(mod, message(mod, "dee's message"), "Delete")
    await mod.get_by_role("dialog").get_by_role("button", name="Delete").click()
    await expect(reader.locator(MESSAGE_TEXTS)).to_have_text([DELETED, DELETED, "this one stays"])
    await reader.reload()  # and the same from history
    await expect(reader.locator(MESSAGE_TEXTS)).to_have_text([DELETED, DELETED, "this one stays"])


async def test_reply_quotes_its_parent_and_jumps_to_it(browsing: Browsing,
                                                       server: BrowserServer) -> None:
    room = await server.room("general")
    eli, fox, gil = [await server.make_user(n) for n in ("eli", "fox", "gil")]
    writer = await browsing.page(eli)
    await open_room(writer, "general")
    await say(writer, "Who has the projector key?")
    for k in range(60):  # enough that a fresh page does not load the question
        await server.post(room, gil, f"chatter {k}", f"gil-{k}")
    question = message(writer, "Who has the projector key?")
    await act(writer, question, "Reply")
    await expect(writer.locator("#composer-mode")).to_contain_text("Replying to Eli")
    await expect(question).to_have_class(re.compile(r"\breplied\b"))
    await writer.get_by_label("Message #general").fill("Answering myself: it is in the drawer.")
    await writer.get_by_label("Message #general").press("Enter")
    await expect(writer.locator("#composer-mode")).to_be_hidden()
    answer = message(writer, "Answering myself: it is in the drawer.")
    await expect(answer.locator(".reply-quote")).to_contain_text("Eli")
    await expect(answer.locator(".reply-quote")).to_contain_text("Who has the projector key?")

    reader = await browsing.page(fox)
    await open_room(reader, "general")
    reply = message(reader, "Answering myself: it is in the drawer.")
    quote = reply.locator(".reply-quote")
    await expect(quote.locator(".reply-author")).to_have_text("Eli")
    await expect(quote.locator(".reply-excerpt")).to_have_text("Who has the projector key?")
    await expect(message(reader, "Who has the projector key?")).to_have_count(0)  # not loaded
    await quote.click()  # loads older pages until the parent is there
    parent = message(reader, "Who has the projector key?")
    await expect(parent).to_be_focused()
    await expect(parent).to_be_in_viewport()
    await expect(parent).to_have_class(re.compile(r"\bflash\b"))

    # Editing the parent updates the quote live; deleting it says so.
    await act(writer, question, "Edit")
    await writer.get_by_label("Message #general").fill("Who has the key to room 4?")
    await writer.get_by_label("Message #general").press("Enter")
    await expect(quote.locator(".reply-excerpt")).to_have_text("Who has the key to room 4?")
    await act(writer, message(writer, "Who has the key to room 4?"), "Delete")
    await writer.get_by_role("dialog").get_by_role("button", name="Delete").click()
    await expect(quote.locator(".reply-excerpt")).to_have_text("Original message was deleted.")
    await reader.reload()
    await expect(message(reader, "Answering myself: it is in the drawer.").locator(
        ".reply-excerpt")).to_have_text("Original message was deleted.")


async def test_reactions_toggle_and_count_on_both_clients(browsing: Browsing,
                                                          server: BrowserServer) -> None:
    await server.room("general")
    hana, ivan = await server.make_user("hana"), await server.make_user("ivan")
    first, second = await browsing.page(hana), await browsing.page(ivan)
    await open_room(first, "general")
    await open_room(second, "general")
    await say(first, "Lunch at noon?")
    on_first, on_second = message(first, "Lunch at noon?"), message(second, "Lunch at noon?")
    await expect(on_second).to_have_count(1)

    await act(first, on_first, "React")
    picker = first.get_by_role("menu", name="Pick a reaction")
    await picker.get_by_role("menuitem", name="React with 👍").click()
    await expect(picker).to_have_count(0)
    pill_first = on_first.locator(".reaction[data-emoji='👍']")
    pill_second = on_second.locator(".reaction[data-emoji='👍']")
    await expect(pill_first).to_have_text("👍1")
    await expect(pill_first).to_have_attribute("aria-pressed", "true")
    await expect(pill_second).to_have_text("👍1")
    await expect(pill_second).to_have_attribute("aria-pressed", "false")
    await expect(pill_second).to_have_attribute("title", "Hana reacted with 👍")

    await pill_second.click()  # Ivan adds his
    for pill in (pill_first, pill_second):
        await expect(pill).to_have_text("👍2")
    await expect(pill_second).to_have_attribute("aria-pressed", "true")
    await expect(pill_first).to_have_attribute("aria-pressed", "true")
    await expect(pill_first).to_have_attribute("title", re.compile(r"^(you and Ivan|Ivan and you) "))

    await pill_first.click()  # Hana takes hers back
    for pill in (pill_first, pill_second):
        await expect(pill).to_have_text("👍1")
    await expect(pill_first).to_have_attribute("aria-pressed", "false")
    await expect(pill_second).to_have_attribute("aria-pressed", "true")
    await act(second, on_second, "React")
    await second.get_by_role("menuitem", name="React with 🎉").click()
    await expect(on_first.locator(".reaction:not(.add)")).to_have_count(2)
    await pill_second.click()
    await on_second.locator(".reaction[data-emoji='🎉']").click()
    for item in (on_first, on_second):
        await expect(item.locator(".reaction")).to_have_count(0)
    await second.reload()  # history agrees: no reactions left
    await expect(message(second, "Lunch at noon?").locator(".reaction")).to_have_count(0)


async def test_a_reader_offline_meanwhile_sees_the_current_state(browsing: Browsing,
                                                                 server: BrowserServer) -> None:
    browsing.allow = OFFLINE_NOISE
    await server.room("general")
    joan, kai = await server.make_user("joan"), await server.make_user("kai")
    writer, reader = await browsing.page(joan), await browsing.page(kai)
    await open_room(writer, "general")
    await open_room(reader, "general")
    for text in ("to be edited", "to be deleted", "to be liked", "untouched"):
        await say(writer, text)
    await expect(reader.locator(MESSAGE_TEXTS)).to_have_text(
        ["to be edited", "to be deleted", "to be liked", "untouched"])
    await expect(reader.locator("#presence li")).to_have_count(2)

    await reader.context.set_offline(True)
    await expect(reader.locator("#conn-state")).not_to_have_attribute("data-state", "connected")
    await expect(reader.locator("#presence li")).to_have_count(0)  # nobody claimed online

    await act(writer, message(writer, "to be edited"), "Edit")
    await writer.get_by_label("Message #general").fill("edited while you were away")
    await writer.get_by_label("Message #general").press("Enter")
    await act(writer, message(writer, "to be deleted"), "Delete")
    await writer.get_by_role("dialog").get_by_role("button", name="Delete").click()
    await act(writer, message(writer, "to be liked"), "React")
    await writer.get_by_role("menuitem", name="React with ❤️").click()
    await expect(writer.locator(MESSAGE_TEXTS)).to_have_text(
        ["edited while you were away", DELETED, "to be liked", "untouched"])
    await expect(message(writer, "to be liked").locator(".reaction[data-emoji='❤️']")).to_have_text("❤️1")
    # The reader heard nothing of it.
    await expect(reader.locator(MESSAGE_TEXTS)).to_have_text(
        ["to be edited", "to be deleted", "to be liked", "untouched"])

    await reader.context.set_offline(False)
    await expect(reader.locator("#conn-state")).to_have_attribute("data-state", "connected",
                                                                  timeout=15_000)
    await expect(reader.locator(MESSAGE_TEXTS)).to_have_text(
        ["edited while you were away", DELETED, "to be liked", "untouched"])
    await expect(message(reader, "edited while you were away").locator(".edited")).to_have_count(1)
    liked = message(reader, "to be liked").locator(".reaction[data-emoji='❤️']")
    await expect(liked).to_have_text("❤️1")
    await expect(reader.locator("#presence li")).to_have_count(2)
