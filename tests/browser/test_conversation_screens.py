"""A busy conversation on a desktop and on a phone: everything a room can show at once
(day separators, groups, replies, reactions, an edit, a deletion, mentions, direct messages
and a private room in the sidebar), checked for layout and saved as screenshots."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from streamzy.guards.context import SYSTEM
from streamzy.services.message_state import Person
from streamzy.services.message_writer import Sender
from streamzy.storage.models import Membership, User
from tests.browser.conftest import BrowserServer, Browsing, artifact, expect
from tests.browser.helpers import open_room
from tests.waiting import assert_eventually, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def sender(user: User) -> Sender:
    return Sender(user.id, user.username, user.display_name, False)


async def busy_room(server: BrowserServer) -> tuple[User, Any]:
    """#general with two days of talk; returns the reader and the browser's 'now'."""
    base = server.clock.now().replace(hour=9, minute=0, second=0)
    general = await server.room("general", topic="Announcements, questions and the odd cat photo")
    await server.room("ops", private=True)
    await server.room("random")
    ana, bob, cyd = [await server.make_user(n) for n in ("ana", "bob", "cyd")]
    admin = await server.admin()
    await server.services.rooms.invite(admin.id, (await server.services.rooms.by_name("ops")).id,
                                       "ana", SYSTEM)
    room = await server.services.rooms.get(general)
    for user in (ana, bob, cyd):  # members: a mention names members only
        await server.services.rooms.join(user.id, room)
    send = server.services.messages.send
    changes = server.services.changes

    async def say(user: User, text: str, reply_to: int | None = None) -> int:
        server.clock.advance(40)
        result = await send(sender(user), room, f"m{server.clock.now().timestamp()}", text,
                            SYSTEM, reply_to=reply_to)
        return int(result.id)

    server.clock.set(base)
    await say(bob, "Morning! Is the staging deploy still scheduled for today?")
    await say(bob, "I'd like to get the migration in first.")
    plan = await say(ana, "Yes, after lunch. The migration can go in before, if it is reviewed.")
    await say(cyd, "I can review it this afternoon.")
    server.clock.set(base + timedelta(days=1))
    question = await say(bob, "Who has the key to the projector room?")
    await say(cyd, "Not me, sorry.")
    await say(ana, "It is in the top drawer of the front desk.", reply_to=question)
    typo = await say(bob, "Thanks! Found it, and the adaptor too.")
    await changes.edit(sender(bob), room, typo, "Thanks! Found it, and the HDMI adaptor too.",
                       SYSTEM)
    for user, emoji in ((cyd, "👍"), (ana, "👍"), (cyd, "🎉")):
        await changes.react(sender(user), room, typo, emoji, SYSTEM)
    oops = await say(cyd, "wrong window, ignore")
    await changes.delete(sender(cyd), room, oops, SYSTEM)
    await say(cyd, "@ana could you look at the release notes before 3?", reply_to=plan)
    await say(bob, "@room standup moves to 10:30 tomorrow.")
    await say(cyd, "Noted 👍")
    people = [Person(u.id, u.username, u.display_name, False) for u in (ana, bob, cyd)]
    await server.services.direct.open(people[1], ["ana"], SYSTEM)
    await server.services.direct.open(people[2], ["ana", "bob"], SYSTEM)
    now = server.clock.now() + timedelta(minutes=1)
    server.clock.set(now)
    return ana, now


async def check_room(page: Any) -> None:
    await expect(page.locator("#messages > .day-separator")).to_have_text(["Yesterday", "Today"])
    await expect(page.locator("#messages .reply-quote")).to_have_count(2)
    await expect(page.locator("#messages .reaction:not(.add)")).to_have_count(2)
    await expect(page.locator("#messages .edited")).to_have_count(1)
    await expect(page.locator("#messages .message.deleted")).to_have_count(1)
    await expect(page.locator("#messages .message.mentions-me")).to_have_count(2)
    await expect(page.locator("#dm-links a")).to_have_text(["Bob", re.compile(r"^Bob, Cyd|^Cyd, Bob")])
    await expect(page.locator("#room-links a", has_text="#ops").locator(".lock")).to_have_count(1)
    await assert_eventually(lambda: page.evaluate(OVERFLOW), 0)
    await expect(page.get_by_role("button", name="Send")).to_be_in_viewport()


async def test_busy_conversation_on_desktop_and_phone(browsing: Browsing,
                                                      server: BrowserServer) -> None:
    ana, now = await busy_room(server)
    desk = await browsing.page(ana, timezone_id="UTC")
    await desk.set_viewport_size({"width": 1280, "height": 800})
    await desk.clock.set_fixed_time(now)
    await open_room(desk, "general")
    await check_room(desk)
    # Scrolled to where the days meet: the separators, a group and a reply in one view.
    await desk.locator("#messages > .day-separator").last.evaluate(
        "e => e.scrollIntoView({block: 'center'})")
    await desk.screenshot(path=artifact("conversation-desktop-days.png"))
    liked = desk.locator("#messages .message", has_text="HDMI adaptor")
    await liked.hover()
    await expect(liked.get_by_role("toolbar", name="Message actions")).to_be_visible()
    await desk.screenshot(path=artifact("conversation-desktop.png"))
    await liked.get_by_role("button", name="Reply", exact=True).click()
    await desk.get_by_label("Message #general").fill("Great, see you at 10:30 @bob")
    await expect(desk.locator("#composer-mode")).to_contain_text("Replying to Bob")
    await desk.screenshot(path=artifact("conversation-desktop-replying.png"))

    # The desktop reports what Ana has read half a second after it is on screen: the phone
    # opens once the server has it (else it rightly shows it all as new, from the top).
    general = await server.services.rooms.by_name("general")
    assert general is not None

    async def read_up_to() -> int:
        async with server.services.db.unit() as db:
            return int((await db.execute(select(Membership.last_read_seq).where(
                Membership.room_id == general.id, Membership.user_id == ana.id))).scalar_one())

    await wait_until(lambda: read_up_to(), what="the desktop's read position")
    phone = await browsing.page(ana, phone=True, timezone_id="UTC")
    await phone.set_viewport_size({"width": 390, "height": 844})
    await phone.clock.set_fixed_time(now)
    await open_room(phone, "general")
    await check_room(phone)
    await expect(phone.locator("#messages .message").last).to_be_in_viewport()
    await phone.screenshot(path=artifact("conversation-phone.png"))
    first_dm = phone.locator("#dm-links a").first
    await first_dm.click()
    await expect(phone.locator("#room-title .dm-names")).to_have_text("Bob")
    await expect(phone.locator("#conn-state")).to_have_attribute("data-state", "connected")
    await phone.screenshot(path=artifact("conversation-phone-dm.png"))

    dark = await browsing.page(ana, timezone_id="UTC", color_scheme="dark")
    await dark.set_viewport_size({"width": 1280, "height": 800})
    await dark.clock.set_fixed_time(now)
    await open_room(dark, "general")
    await check_room(dark)
    await dark.screenshot(path=artifact("conversation-desktop-dark.png"))
