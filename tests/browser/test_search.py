"""The search box: type, see results from one's rooms (newest first), click one, land in
its room at the message, highlighted, even when it is older than the page first loaded."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.browser.conftest import BrowserServer, Browsing, expect
from tests.browser.helpers import open_room

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]
SHOTS = Path("/tmp/search-shots")


async def test_search_and_jump_to_an_old_message(browsing: Browsing,
                                                 server: BrowserServer) -> None:
    SHOTS.mkdir(exist_ok=True)
    general = await server.room("general")
    random = await server.room("random")
    secret = await server.room("secret", private=True)
    jay = await server.make_user("jay")
    kim = await server.make_user("kim")
    for room_id in (general, random):
        room = await server.services.rooms.get(room_id)
        assert room is not None
        await server.services.rooms.join(jay.id, room)
        await server.services.rooms.join(kim.id, room)
    await server.post(general, kim, "The xylophonic overture starts at noon", "old-1")
    for i in range(150):  # the hit is three pages back from what the room opens with
        await server.post(general, kim, f"filler message {i}", f"fill-{i}")
    await server.post(random, kim, "Who brought the Xylophone?", "new-1")
    await server.post(secret, await server.admin(), "xylophonic secret", "secret-1")

    page = await browsing.page(jay)
    await open_room(page, "random")
    box = page.get_by_role("searchbox", name="Search messages in your rooms")
    await box.fill("xyloph")
    await box.press("Enter")
    hits = page.locator("#search-results .search-hit")
    await expect(hits).to_have_count(2)  # not the private room jay is not in
    await expect(hits.nth(0)).to_contain_text("Who brought the Xylophone?")
    await expect(hits.nth(0)).to_contain_text("#random")
    await expect(hits.nth(1)).to_contain_text("The xylophonic overture starts at noon")
    await expect(hits.nth(1)).to_contain_text("#general")
    await page.screenshot(path=str(SHOTS / "1-results.png"))

    await hits.nth(1).get_by_role("link").click()
    await page.wait_for_url("**/rooms/general?at=1")
    target = page.locator('#messages .message[data-seq="1"]')
    await expect(target).to_have_class(re.compile(r"\bsearch-focus\b"))
    await expect(target).to_contain_text("The xylophonic overture starts at noon")
    await expect(target).to_be_in_viewport()
    await page.screenshot(path=str(SHOTS / "2-jumped.png"))

    # A word nobody wrote: an empty answer, said so.
    await box.fill("nonexistentword")
    await box.press("Enter")
    await expect(page.locator("#search-results .search-empty")).to_have_text("No messages found.")
    # Too short to search: the server's reason, shown (the 400 is expected).
    browsing.allow = re.compile(r"status of 400 \(\) @ http://[^ ]+/rooms/general\?at=1$")
    await box.fill("ab")
    await box.press("Enter")
    await expect(page.locator("#search-results .search-error")).to_contain_text("at least 3")
    await page.screenshot(path=str(SHOTS / "3-refused.png"))
