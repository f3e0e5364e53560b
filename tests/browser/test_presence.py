"""Who is online, seen in the browser: the join answer's list, then coalesced deltas (who
came, who went), a count when the list is long, and nothing claimed while offline."""

from __future__ import annotations

import pytest

from tests.browser.conftest import BrowserServer, Browsing, expect
from tests.browser.helpers import open_room

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


@pytest.mark.settings(presence_list_limit=2)
async def test_the_online_list_follows_joins_and_leaves(browsing: Browsing,
                                                        server: BrowserServer) -> None:
    await server.room("general")
    alice, bob, carol, dave = [await server.make_user(n)
                               for n in ("alice", "bob", "carol", "dave")]
    first = await browsing.page(alice)
    await open_room(first, "general")
    people = first.locator("#presence li")
    await expect(people).to_have_text(["Alice (you)"])
    await expect(first.locator("#online-title")).to_have_text("Online (1)")

    second = await browsing.page(bob)
    await open_room(second, "general")
    await expect(people).to_have_text(["Alice (you)", "Bob"])  # a delta: Bob came
    await expect(second.locator("#presence li")).to_have_text(["Alice", "Bob (you)"])

    third = await browsing.page(carol)
    await open_room(third, "general")
    await expect(first.locator("#online-title")).to_have_text("Online (3)")
    fourth = await browsing.page(dave)
    await open_room(fourth, "general")
    await expect(first.locator("#online-title")).to_have_text("Online (4)")
    # Dave's join answer lists at most two people: he sees them, himself and a count.
    await expect(fourth.locator("#online-title")).to_have_text("Online (4)")
    await expect(fourth.locator("#presence li")).to_have_text(
        ["Alice", "Bob", "Dave (you)", "and 1 more"])
    await fourth.close()

    await second.close()  # Bob leaves: a delta naming him goes to the room
    await expect(people).to_have_text(["Alice (you)", "Carol"])
    await expect(first.locator("#online-title")).to_have_text("Online (2)")
