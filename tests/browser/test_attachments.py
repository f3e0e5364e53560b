"""Files in the browser: attach with the button, by drag and drop and by pasting an image;
see the image's thumbnail inline; download a PDF byte for byte; and a hostile file opened
from the chat runs nothing."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest

from streamzy.guards.context import SYSTEM
from streamzy.services.attachments import Uploader
from streamzy.services.message_writer import Sender
from tests.attachment_samples import HTML_PAGE, gif_html_polyglot, noise_png, small_pdf
from tests.browser.conftest import BrowserServer, Browsing, expect
from tests.browser.helpers import open_room

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]
SHOTS = Path("/tmp/attach-shots")

# Build a File in the page and hand it over as a user's drop or paste would.
DROP = """([name, type, data]) => {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const dt = new DataTransfer();
  dt.items.add(new File([bytes], name, { type }));
  const form = document.getElementById("composer");
  form.dispatchEvent(new DragEvent("dragover", { dataTransfer: dt, bubbles: true, cancelable: true }));
  form.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
}"""
PASTE = """([name, type, data]) => {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const dt = new DataTransfer();
  dt.items.add(new File([bytes], name, { type }));
  const input = document.getElementById("composer-text");
  input.dispatchEvent(new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true }));
}"""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / name))


async def test_attach_by_button_drop_and_paste_view_and_download(
        browsing: Browsing, server: BrowserServer) -> None:
    await server.room("general")
    jay = await server.make_user("jay")
    page = await browsing.page(jay)
    await open_room(page, "general")
    composer = page.get_by_label("Message #general")
    pending = page.locator("#composer-files .composer-file")
    messages = page.locator("#messages .message[data-seq]")

    # 1. The attach button opens the file chooser.
    async with page.expect_file_chooser() as chooser:
        await page.get_by_role("button", name="Attach files").click()
    await (await chooser.value).set_files(
        [{"name": "sunset.png", "mimeType": "image/png", "buffer": noise_png(400, 240)}])
    await expect(pending).to_have_count(1)
    await expect(pending.first).to_have_attribute("data-state", "done")
    await shot(page, "1-pending-upload.png")
    await composer.fill("look at this")
    await composer.press("Enter")
    await expect(messages).to_have_count(1)
    image = messages.first.locator(".files img")
    await expect(image).to_have_attribute("src", re.compile(r"^/files/[\w-]+/thumbnail$"))
    await expect(image).to_have_attribute("alt", "sunset.png")
    await expect(pending).to_have_count(0)
    await page.wait_for_function(
        "() => { const i = document.querySelector('#messages .files img');"
        " return i && i.complete && i.naturalWidth > 0; }")
    assert await image.evaluate("i => i.naturalWidth") == 320  # the server's thumbnail

    # 2. Drag and drop a PDF onto the composer, send it without text.
    pdf = small_pdf()
    await page.evaluate(DROP, ["report.pdf", "application/pdf", b64(pdf)])
    await expect(pending.first).to_have_attribute("data-state", "done")
    await composer.press("Enter")
    await expect(messages).to_have_count(2)
    link = messages.nth(1).locator(".file-link")
    await expect(link).to_contain_text("report.pdf")

    # 3. Paste a screenshot into the message box.
    await page.evaluate(PASTE, ["image.png", "image/png", b64(noise_png(60, 40))])
    await expect(pending.first).to_have_attribute("data-state", "done")
    await composer.fill("pasted")
    await composer.press("Enter")
    await expect(messages).to_have_count(3)
    await expect(messages.nth(2).locator(".files img")).to_have_attribute("alt", "image.png")
    await page.wait_for_function(
        "() => [...document.querySelectorAll('#messages .files img')]"
        ".every((i) => i.complete && i.naturalWidth > 0)")
    await shot(page, "2-messages-with-files.png")

    # 4. Download the PDF: the same bytes come back.
    async with page.expect_download() as download:
        await link.click()
    saved = await (await download.value).path()
    assert Path(saved).read_bytes() == pdf
    assert (await download.value).suggested_filename == "report.pdf"

    # A second member sees the same files after a reload (history carries them).
    kim = await server.make_user("kim")
    other = await browsing.page(kim)
    await open_room(other, "general")
    await expect(other.locator("#messages .message[data-seq]")).to_have_count(3)
    await expect(other.locator("#messages .files img")).to_have_count(2)
    await other.wait_for_function(
        "() => [...document.querySelectorAll('#messages .files img')]"
        ".every((i) => i.complete && i.naturalWidth > 0)")
    await shot(other, "3-other-member-view.png")


async def test_a_hostile_file_opened_from_the_chat_runs_nothing(
        browsing: Browsing, server: BrowserServer) -> None:
    room_id = await server.room("general")
    eve = await server.make_user("eve")
    room = await server.services.rooms.get(room_id)
    assert room is not None
    await server.services.rooms.join(eve.id, room)
    files = server.services.attachments
    ids = []
    for name, data in (("cat.gif", gif_html_polyglot()), ("page.html", HTML_PAGE)):
        await files.check_uploader(Uploader(eve.id), room, SYSTEM, on="test")
        ids.append((await files.upload(Uploader(eve.id), room, name, data, SYSTEM)).public_id)
    await server.services.posting.send(Sender(eve.id, "eve", "Eve"), room, "h1", "hello",
                                       SYSTEM, attachments=ids)
    viewer = await server.make_user("viewer")
    page = await browsing.page(viewer)
    await open_room(page, "general")
    await expect(page.locator("#messages .files a")).to_have_count(2)

    # The image opens (inline) as a picture under a sandbox: no script of it can run.
    # (Chromium asks for /favicon.ico for a bare image document: that 404 is expected.)
    browsing.allow = re.compile(r"status of 404 \(\) @ .*/files/[A-Za-z0-9_-]+$")
    response = await page.goto(f"/files/{ids[0]}")
    assert response is not None and response.status == 200
    assert response.headers["content-type"] == "image/gif"
    assert "sandbox" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert await page.evaluate("() => [document.title, window.pwned]") != ["pwned", 1]
    assert await page.evaluate("() => document.querySelectorAll('script').length") == 0
    await page.wait_for_function("() => document.images.length === 1 && "
                                 "document.images[0].complete")
    assert await page.evaluate("() => document.images[0].naturalWidth") == 8  # it shows
    await shot(page, "4-polyglot-opened.png")

    # The HTML file is text and a download: the browser never renders it as a page.
    await open_room(page, "general")
    async with page.expect_download() as download:
        await page.locator("#messages .file-link").click()
    saved = await (await download.value).path()
    assert Path(saved).read_bytes() == HTML_PAGE
    assert await page.title() != "pwned"
    response = await page.request.get(f"/files/{ids[1]}")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-disposition"].startswith("attachment;")
