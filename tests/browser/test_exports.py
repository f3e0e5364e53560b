"""Exports in a real browser: a person downloads their own messages from the account page,
an admin downloads a room from the rooms page; both files are the JSON the server sent,
and the page shows how far each export got (counted as it streams)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamzy.storage.models import User
from tests.browser.conftest import BrowserServer, Browsing, artifact, expect
from tests.storage.backup_fixtures import SECRET_TEXTS, populate

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


async def test_both_exports_download_from_their_pages(browsing: Browsing,
                                                      server: BrowserServer) -> None:
    people = await populate(server.services)
    async with server.services.db.unit() as db:
        bob = await db.get(User, people.bob.user_id)
        alice = await db.get(User, people.alice.user_id)
    assert bob is not None and alice is not None

    page = await browsing.page(bob)
    await page.goto("/account")
    button = page.get_by_role("button", name="Export my messages")
    await expect(button).to_be_visible()
    await page.screenshot(path=artifact("account-export.png"), full_page=True)
    async with page.expect_download() as download:
        await button.click()
    saved = await (await download.value).path()
    assert (await download.value).suggested_filename == "streamzy-bob-messages.json"
    mine = json.loads(Path(saved).read_text("utf-8"))
    assert [m["text"] for m in mine["messages"]] == [SECRET_TEXTS[1], SECRET_TEXTS[3]]
    # The page counted the streamed messages against the announced total.
    await expect(page.locator(".export-status")).to_have_text(
        "Export ready: 2 messages saved.")
    await page.screenshot(path=artifact("account-export-done.png"), full_page=True)

    page = await browsing.page(alice)
    await page.goto("/admin/rooms")
    export = page.locator("tr[data-room='general']").get_by_role(
        "button", name="Export the messages of #general")
    await expect(export).to_be_visible()
    await page.screenshot(path=artifact("admin-rooms-export.png"), full_page=True)
    async with page.expect_download() as download:
        await export.click()
    room = json.loads(Path(await (await download.value).path()).read_text("utf-8"))
    assert [m["sender"] for m in room["messages"]] == ["alice", "bob", "bob"]
    await expect(page.locator(".export-status")).to_have_text(
        "Export ready: 3 messages saved.")
    assert len(await server.audit_rows("data_exported")) == 2
    assert browsing.problems() == []
