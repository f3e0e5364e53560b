"""Attachments over real HTTP: upload from a signed-in browser and a bot, the file route's
headers, body limits, malformed bodies, who may fetch, and messages carrying files."""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from PIL import Image

from streamzy.guards.context import SYSTEM
from tests.attachment_samples import (
    HTML_PAGE,
    MARKER,
    SVG_WITH_SCRIPT,
    gif_html_polyglot,
    jpeg_with_gps,
    noise_png,
    small_pdf,
    text_file,
)
from tests.conftest import LiveServer, csrf_of
from tests.realtime.helpers import connected, make_room, signed_in_cookie

pytestmark = pytest.mark.asyncio
LIMIT = 64 * 1024


@pytest.fixture
def server_settings() -> dict[str, Any]:
    return {"attachment_max_bytes": LIMIT}


async def browser(server: LiveServer, username: str) -> httpx.AsyncClient:
    """A signed-in client (its CSRF token: ``csrf_of(client, "/rooms")``, what the chat
    page's script sends)."""
    cookie = await signed_in_cookie(server, username)
    return server.client(cookies={"streamzy_session": cookie})


async def put_file(client: httpx.AsyncClient, token: str, room: int, name: str,
                   data: bytes, **headers: str) -> httpx.Response:
    return await client.post(f"/rooms/{room}/files", content=data, headers={
        "X-CSRF-Token": token, "X-Filename": quote(name), "Accept": "application/json",
        "Origin": str(client.base_url).rstrip("/"), **headers})


async def bot(server: LiveServer, name: str, rooms: list[int]) -> dict[str, str]:
    admin = await server.services.accounts.by_username("roomadmin")
    assert admin is not None
    _, token = await server.services.bots.create(admin.id, name, name.title(), rooms, SYSTEM)
    return {"Authorization": f"Bearer {token}"}


async def join(server: LiveServer, username: str, room: int) -> None:
    user = await server.services.accounts.by_username(username)
    info = await server.services.rooms.get(room)
    assert user is not None and info is not None
    await server.services.rooms.join(user.id, info)


async def test_upload_fetch_and_the_file_routes_headers(server: LiveServer) -> None:
    room = await make_room(server, "general")
    client = await browser(server, "olivia")
    await join(server, "olivia", room)
    async with client:
        token = await csrf_of(client, "/rooms")
        cases = [("r\u00e9sum\u00e9 \"final\".pdf", small_pdf(), "application/pdf", "attachment"),
                 ("notes.txt", text_file(), "text/plain; charset=utf-8", "attachment"),
                 ("page.html", HTML_PAGE, "text/plain; charset=utf-8", "attachment"),
                 ("drawing.svg", SVG_WITH_SCRIPT, "text/plain; charset=utf-8", "attachment"),
                 ("cat.png", gif_html_polyglot(), "image/gif", "inline"),
                 ("photo.jpg", jpeg_with_gps(), "image/jpeg", "inline")]
        for name, data, content_type, disposition in cases:
            answer = await put_file(client, token, room, name, data)
            assert answer.status_code == 201, answer.text
            view = answer.json()["attachment"]
            assert view["name"] == name and view["type"] == content_type.split(";")[0]
            got = await client.get(f"/files/{view['id']}")
            assert got.status_code == 200
            headers = got.headers
            assert headers["content-type"] == content_type
            assert headers["content-disposition"].startswith(disposition + ";")
            assert "filename*=UTF-8''" in headers["content-disposition"]
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["cache-control"] == "private, no-store"
            assert headers["cross-origin-resource-policy"] == "same-origin"
            csp = headers["content-security-policy"]
            assert "default-src 'none'" in csp and "sandbox" in csp
            assert "script-src" not in csp
            if not content_type.startswith("image/"):
                assert got.content == data
            else:
                assert b"<script" not in got.content and b"SpyCam" not in got.content
                assert Image.open(io.BytesIO(got.content)).getexif() == {}
                thumb = await client.get(f"/files/{view['id']}/thumbnail")
                assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
        pdf = (await put_file(client, token, room, "r\u00e9sum\u00e9.pdf", small_pdf())).json()
        header = (await client.get(f"/files/{pdf['attachment']['id']}")).headers
        assert "filename*=UTF-8''r%C3%A9sum%C3%A9.pdf" in header["content-disposition"]


async def test_body_limits_and_bad_bodies_get_stable_codes(server: LiveServer) -> None:
    room = await make_room(server, "general")
    client = await browser(server, "olivia")
    await join(server, "olivia", room)
    auth = await bot(server, "filer", [room])
    async with client:
        token = await csrf_of(client, "/rooms")
        big = await put_file(client, token, room, "big.txt", b"a" * (LIMIT + 1))
        assert big.status_code == 413 and big.json()["code"] == "file_too_large"

        async def chunks() -> Any:  # no Content-Length: refused as it streams past the cap
            for _ in range(LIMIT // 4096 + 4):
                yield b"b" * 4096

        streamed = await put_file(client, token, room, "s.txt", chunks())  # type: ignore[arg-type]
        assert streamed.status_code == 413 and streamed.json()["code"] == "file_too_large"
        refused = await put_file(client, token, room, "x.bin", b"\x00\x01\x02binary")
        assert refused.status_code == 415
        assert refused.json()["code"] == "unsupported_file_type"
        no_csrf = await client.post(f"/rooms/{room}/files", content=b"hello",
                                    headers={"Accept": "application/json"})
        assert no_csrf.status_code == 403
    async with server.client() as http:
        anonymous = await http.post(f"/rooms/{room}/files", content=b"hello",
                                    headers={"Accept": "application/json"})
        assert anonymous.status_code in (401, 403)
        for content_type, body in [
            ("multipart/form-data; boundary=XYZ", b"--XYZ\r\nContent-Dispo garbage"),
            ("multipart/form-data; boundary=XYZ", b"not multipart at all"),
            ("multipart/form-data", b"--\r\n"),
            ("multipart/form-data; boundary=XYZ",
             b"--XYZ\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nno file\r\n--XYZ--\r\n"),
        ]:
            bad = await http.post(f"/api/v1/rooms/{room}/files", content=body,
                                  headers={**auth, "Content-Type": content_type})
            assert bad.status_code == 400, (content_type, body, bad.text)
            assert bad.json()["code"] == "invalid_multipart"
        form = await http.post(f"/api/v1/rooms/{room}/files", data={"a": "b"}, headers=auth)
        assert form.status_code == 415


async def test_non_members_removed_members_and_others_get_404(server: LiveServer) -> None:
    room = await make_room(server, "general", private=True)
    other = await make_room(server, "other")
    owner = await browser(server, "olivia")
    await server.services.rooms.invite(
        (await server.services.accounts.by_username("roomadmin")).id,  # type: ignore[union-attr]
        room, "olivia", SYSTEM)
    alice = await browser(server, "alice")
    await server.services.rooms.invite(
        (await server.services.accounts.by_username("roomadmin")).id,  # type: ignore[union-attr]
        room, "alice", SYSTEM)
    mallory = await browser(server, "mallory")
    await join(server, "mallory", other)
    async with owner, alice, mallory:
        token = await csrf_of(owner, "/rooms")
        sent = (await put_file(owner, token, room, "plan.txt", text_file())).json()
        unsent = (await put_file(owner, token, room, "draft.txt", text_file())).json()
        file_id, draft_id = sent["attachment"]["id"], unsent["attachment"]["id"]
        olivia = await server.services.accounts.by_username("olivia")
        info = await server.services.rooms.get(room)
        assert olivia is not None and info is not None
        from streamzy.services.message_writer import Sender
        await server.services.posting.send(Sender(olivia.id, "olivia", "Olivia"), info, "c1",
                                           "plan", SYSTEM, attachments=[file_id])
        assert (await alice.get(f"/files/{file_id}")).status_code == 200
        unknown = await alice.get("/files/AAAAAAAAAAAAAAAAAAAAAA", headers={"Accept":
                                                                           "application/json"})
        answers = [await mallory.get(f"/files/{file_id}", headers={"Accept": "application/json"}),
                   await mallory.get(f"/files/{file_id}/thumbnail",
                                     headers={"Accept": "application/json"}),
                   await alice.get(f"/files/{draft_id}", headers={"Accept": "application/json"}),
                   unknown]
        assert [a.status_code for a in answers] == [404] * 4
        assert len({a.json()["code"] for a in answers}) == 1
        alice_user = await server.services.accounts.by_username("alice")
        assert alice_user is not None
        await server.services.rooms.leave(alice_user.id, room, SYSTEM)
        gone = await alice.get(f"/files/{file_id}", headers={"Accept": "application/json"})
        assert gone.status_code == 404
        outsider_upload = await put_file(mallory, await csrf_of(mallory, "/rooms"), room,
                                         "x.txt", text_file())
        assert outsider_upload.status_code in (403, 404)


async def test_bots_upload_and_fetch_and_messages_carry_files(server: LiveServer) -> None:
    room = await make_room(server, "general")
    auth = await bot(server, "filer", [room])
    watcher = await connected(server, "watcher", rooms=[room])
    try:
        async with server.client() as http:
            multipart = await http.post(f"/api/v1/rooms/{room}/files", headers=auth,
                                        files={"file": (f"{MARKER}.png", noise_png(),
                                                        "text/html")})
            assert multipart.status_code == 201, multipart.text
            image = multipart.json()["attachment"]
            assert image["type"] == "image/png" and image["thumbnail"] is True
            raw = await http.post(f"/api/v1/rooms/{room}/files", content=small_pdf(),
                                  headers={**auth, "X-Filename": "report%20%E2%9C%93.pdf"})
            assert raw.status_code == 201
            pdf = raw.json()["attachment"]
            assert pdf["name"] == "report \u2713.pdf"
            fetched = await http.get(f"/api/v1/files/{pdf['id']}", headers=auth)
            assert fetched.status_code == 200 and fetched.content == small_pdf()
            posted = await http.post(f"/api/v1/rooms/{room}/messages", headers=auth, json={
                "client_msg_id": "f1", "text": "", "attachments": [image["id"], pdf["id"]]})
            assert posted.status_code == 201, posted.text
            page = (await http.get(f"/api/v1/rooms/{room}/messages", headers=auth)).json()
            (message,) = page["messages"]
            assert [a["id"] for a in message["attachments"]] == [image["id"], pdf["id"]]
            assert message["attachments"][1] == {**pdf}
            too_many = await http.post(f"/api/v1/rooms/{room}/messages", headers=auth, json={
                "client_msg_id": "f2", "text": "x", "attachments": ["a" * 22] * 5})
            assert too_many.status_code == 400
        await watcher.wait_for(lambda: watcher.messages)
        live = watcher.messages[0]
        assert [a["name"] for a in live["attachments"]] == [f"{MARKER}.png", "report \u2713.pdf"]
        # The socket sends files too (its own upload, through the browser route).
        client = await browser(server, "sender")
        await join(server, "sender", room)
        async with client:
            token = await csrf_of(client, "/rooms")
            note = (await put_file(client, token, room, "n.txt", text_file())).json()
        sender = await connected(server.url, cookie=client.cookies["streamzy_session"],
                                 rooms=[room])
        try:
            ack = await sender.call("message", {"room": room, "client_msg_id": "s1", "text": "see",
                                                "attachments": [note["attachment"]["id"]]})
            assert ack["ok"], ack
            bad = await sender.call("message", {"room": room, "client_msg_id": "s2",
                                                "text": "x", "attachments": ["../../etc"]})
            assert bad["ok"] is False and bad["code"] == "invalid_input"
            # Well formed but not the sender's (unknown here): refused by ownership, and
            # the message is not stored without it.
            forged = await sender.call("message", {"room": room, "client_msg_id": "s3",
                                                   "text": "x", "attachments": ["A" * 22]})
            assert forged["ok"] is False and forged["code"] == "attachment_not_found"
        finally:
            await sender.close()
    finally:
        await watcher.close()
