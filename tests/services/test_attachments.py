"""Attachments without a server: sniffing, metadata stripping, sealing at rest, who may
fetch what, quota, rate, carrying files on messages, and everything that removes them."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select

from streamzy.clock import ManualClock
from streamzy.services.attachments import ORPHAN_SECONDS, Attachments, Uploader
from streamzy.services.backup_verify import verify_database
from streamzy.services.errors import (
    Forbidden,
    Invalid,
    NotFound,
    RateLimited,
    TooLarge,
    Unsupported,
)
from streamzy.services.file_types import GIF
from streamzy.services.images import ImageProblem, clean_image
from streamzy.services.key_rotation import KeyRotation, Throttle
from streamzy.services.message_writer import Sender
from streamzy.services.rooms import RoomInfo
from streamzy.storage.models import Attachment, RoomKey
from streamzy.wiring import Services
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
from tests.conftest import CLIENT, audit_rows, make_user
from tests.lifecycle.dumps import database_copy, holds

pytestmark = pytest.mark.asyncio


async def setup(services: Services) -> tuple[RoomInfo, Sender, Sender]:
    owner = await make_user(services, "olivia")
    alice = await make_user(services, "alice")
    room = await services.rooms.create(owner.id, "general", "", True, CLIENT)
    await services.rooms.invite(owner.id, room.id, "alice", CLIENT)
    return (room, Sender(owner.id, owner.username, owner.display_name),
            Sender(alice.id, alice.username, alice.display_name))


async def upload(services: Services, who: Sender, room: RoomInfo, name: str, data: bytes,
                 attachments: Attachments | None = None) -> str:
    service = attachments or services.attachments
    await service.check_uploader(Uploader(who.user_id), room, CLIENT, on="test")
    view = await service.upload(Uploader(who.user_id), room, name, data, CLIENT)
    return view.public_id


async def rows(services: Services) -> list[Attachment]:
    async with services.db.unit() as db:
        return list((await db.execute(select(Attachment).order_by(Attachment.id))).scalars())


async def test_nothing_of_a_file_is_readable_in_the_database(services: Services,
                                                             tmp_path: Path) -> None:
    room, olivia, _ = await setup(services)
    await upload(services, olivia, room, f"{MARKER}-notes.txt", text_file())
    await upload(services, olivia, room, f"{MARKER}-report.pdf", small_pdf())
    image_id = await upload(services, olivia, room, f"{MARKER}-photo.png", noise_png())
    served = (await services.attachments.fetch(olivia.user_id, image_id)).data
    thumb = (await services.attachments.fetch(olivia.user_id, image_id, thumbnail=True)).data
    copy = await database_copy(services.db.url, tmp_path)
    assert not holds(copy, MARKER.encode())
    assert not holds(copy, b"notes.txt") and not holds(copy, b"photo.png")
    # The image's own bytes (random pixels: nothing else contains these runs).
    for chunk in (served[200:264], served[len(served) // 2:len(served) // 2 + 64],
                  thumb[100:164]):
        assert not holds(copy, chunk)
    stored = await rows(services)
    assert [r.content_type for r in stored] == ["text/plain", "application/pdf", "image/png"]
    assert all(r.data.startswith(b"gAAAA") and r.name_sealed.startswith(b"gAAAA")
               for r in stored)


async def test_the_type_comes_from_the_bytes_never_the_name(services: Services) -> None:
    room, olivia, _ = await setup(services)
    for name, data, expected in [
        ("page.html", HTML_PAGE, "text/plain"),
        ("innocent.png", HTML_PAGE, "text/plain"),
        ("drawing.svg", SVG_WITH_SCRIPT, "text/plain"),
        ("notes.exe", text_file(), "text/plain"),
        ("photo.txt", noise_png(), "image/png"),
        ("archive.bin", b"PK\x05\x06" + b"\x00" * 18, "application/zip"),
    ]:
        public_id = await upload(services, olivia, room, name, data)
        out = await services.attachments.fetch(olivia.user_id, public_id)
        assert out.content_type == expected, name
        assert out.inline == expected.startswith("image/")
    for data in (b"MZ\x90\x00" + os.urandom(200), b"\x00\x01binary", b"\xff\xfe\x00bad utf",
                 b"\x89PNG\r\n\x1a\nnot really a png"):
        with pytest.raises((Unsupported, Invalid)) as refused:
            await upload(services, olivia, room, "x.png", data)
        assert refused.value.code in ("unsupported_file_type", "invalid_image")
    with pytest.raises(Invalid) as empty:
        await upload(services, olivia, room, "empty.txt", b"")
    assert empty.value.code == "empty_file"


async def test_exif_is_gone_and_the_image_stands_upright(services: Services) -> None:
    room, olivia, _ = await setup(services)
    original = jpeg_with_gps(120, 80)
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(0x8825)  # GPS is there
    public_id = await upload(services, olivia, room, "holiday.jpg", original)
    out = await services.attachments.fetch(olivia.user_id, public_id)
    image = Image.open(io.BytesIO(out.data))
    assert out.content_type == "image/jpeg" and image.format == "JPEG"
    assert not image.getexif() and "exif" not in image.info
    assert b"SpyCam" not in out.data and b"GPS" not in out.data
    assert image.size == (80, 120)  # the orientation tag was applied, then dropped
    thumb = Image.open(io.BytesIO((await services.attachments.fetch(
        olivia.user_id, public_id, thumbnail=True)).data))
    assert thumb.format == "WEBP" and max(thumb.size) <= 320


async def test_a_polyglot_keeps_only_its_pixels(services: Services) -> None:
    room, olivia, _ = await setup(services)
    public_id = await upload(services, olivia, room, "cat.gif", gif_html_polyglot())
    out = await services.attachments.fetch(olivia.user_id, public_id)
    assert out.content_type == "image/gif"
    assert b"<script" not in out.data and b"<html" not in out.data


async def test_damaged_images_are_refused_not_crashed_on() -> None:
    # A five-frame GIF cut short at many points: Pillow's GIF reader raises IndexError or
    # struct.error while counting frames. Each must be an invalid_image refusal (the
    # upload answers 400 with that code), never an exception that becomes a 500.
    whole = io.BytesIO()
    frames = [Image.new("RGB", (40, 40), (i * 40, 0, 0)) for i in range(5)]
    frames[0].save(whole, "GIF", save_all=True, append_images=frames[1:])
    data = whole.getvalue()
    cuts = range(20, len(data) - 1, max(1, len(data) // 40))
    for cut in cuts:
        try:
            clean_image(data[:cut], GIF)
        except ImageProblem as refused:
            assert refused.code == "invalid_image", cut


async def test_decompression_bombs_are_refused_before_decoding(services: Services) -> None:
    room, olivia, _ = await setup(services)
    bomb = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(bomb, "PNG")  # 100 megapixels in a few KB
    with pytest.raises(Invalid) as refused:
        await upload(services, olivia, room, "bomb.png", bomb.getvalue())
    assert refused.value.code == "image_too_large"


async def test_size_limit_quota_and_rate(services: Services, clock: ManualClock) -> None:
    room, olivia, _ = await setup(services)
    small = Attachments(services.db, clock, services.keyring, services.rooms, services.audit,
                        services.audit_throttled, services.limiter, services.settings.rate,
                        max_bytes=2048, quota_bytes=5000)
    with pytest.raises(TooLarge) as big:
        await upload(services, olivia, room, "big.txt", b"a" * 2049, small)
    assert big.value.code == "file_too_large"
    await upload(services, olivia, room, "one.txt", b"a" * 2000, small)
    await upload(services, olivia, room, "two.txt", b"b" * 2000, small)
    with pytest.raises(TooLarge) as over:
        await upload(services, olivia, room, "three.txt", b"c" * 2000, small)
    assert over.value.code == "quota_exceeded"
    assert await small.used_bytes(olivia.user_id) == 4000
    # The rate: 20 uploads per 10 minutes (counted when checked, before the body): 4 so far.
    for _ in range(16):
        await services.attachments.check_uploader(Uploader(olivia.user_id), room, CLIENT,
                                                  on="test")
    with pytest.raises(RateLimited):
        await services.attachments.check_uploader(Uploader(olivia.user_id), room, CLIENT,
                                                  on="test")
    clock.advance(600)
    await services.attachments.check_uploader(Uploader(olivia.user_id), room, CLIENT, on="test")
    refused = await audit_rows(services, "rate_limited")
    assert refused and refused[-1].user_id == olivia.user_id
    uploaded = await audit_rows(services, "attachment_uploaded")
    assert len(uploaded) == 2 and "two.txt" not in str(uploaded[-1].detail)


async def test_only_current_members_fetch_and_unsent_files_stay_private(
        services: Services) -> None:
    room, olivia, alice = await setup(services)
    outsider = await make_user(services, "mallory")
    other_room = await services.rooms.create(outsider.id, "elsewhere", "", False, CLIENT)
    public_id = await upload(services, olivia, room, "plan.txt", text_file())
    fetch = services.attachments.fetch
    assert (await fetch(olivia.user_id, public_id)).name == "plan.txt"
    # Not carried by a message yet: only its uploader sees it.
    for who in (alice.user_id, outsider.id):
        with pytest.raises(NotFound) as hidden:
            await fetch(who, public_id)
        assert hidden.value.code == "file_not_found"
    await services.posting.send(olivia, room, "c1", "the plan", CLIENT, attachments=[public_id])
    assert (await fetch(alice.user_id, public_id)).data == text_file()
    with pytest.raises(NotFound):
        await fetch(outsider.id, public_id)  # not a member (a member of another room)
    with pytest.raises(NotFound):
        await fetch(alice.user_id, "A" * 22)  # unknown: the same answer
    await services.rooms.leave(alice.user_id, room.id, CLIENT)
    with pytest.raises(NotFound):
        await fetch(alice.user_id, public_id)  # removed
    # Olivia's own upload to another room cannot ride on a message here.
    await services.rooms.join(olivia.user_id, other_room)
    elsewhere = await upload(services, olivia, other_room, "else.txt", text_file())
    with pytest.raises(NotFound) as foreign:
        await services.posting.send(olivia, room, "c2", "from elsewhere", CLIENT,
                                    attachments=[elsewhere])
    assert foreign.value.code == "attachment_not_found"


async def test_messages_carry_files_and_history_shows_them(services: Services) -> None:
    room, olivia, alice = await setup(services)
    photo = await upload(services, olivia, room, "photo.png", noise_png())
    notes = await upload(services, olivia, room, "notes.txt", text_file())
    sent = await services.posting.send(olivia, room, "c1", "", CLIENT,
                                       attachments=[photo, notes])
    page, _ = await services.history.page(room.id, None, 10, CLIENT)
    (message,) = page
    assert message.id == sent.id and message.text == ""
    assert [(a.public_id, a.name, a.content_type, a.has_thumbnail) for a in message.attachments] \
        == [(photo, "photo.png", "image/png", True), (notes, "notes.txt", "text/plain", False)]
    assert message.attachments[0].width == 64
    # The same send again (a retry) is the same message; another message cannot take them.
    again = await services.posting.send(olivia, room, "c1", "", CLIENT,
                                        attachments=[photo, notes])
    assert again.duplicate and again.id == sent.id
    with pytest.raises(NotFound) as taken:
        await services.posting.send(olivia, room, "c2", "again", CLIENT, attachments=[photo])
    assert taken.value.code == "attachment_not_found"
    mine = await upload(services, alice, room, "alice.txt", text_file())
    with pytest.raises(NotFound):  # someone else's upload
        await services.posting.send(olivia, room, "c3", "hers", CLIENT, attachments=[mine])
    with pytest.raises(Invalid) as empty:
        await services.posting.send(olivia, room, "c4", "  ", CLIENT)
    assert empty.value.code == "empty"


async def test_deleting_the_message_or_the_room_removes_the_files(services: Services) -> None:
    room, olivia, _ = await setup(services)
    first = await upload(services, olivia, room, "a.txt", text_file())
    second = await upload(services, olivia, room, "b.txt", text_file())
    sent = await services.posting.send(olivia, room, "c1", "files", CLIENT, attachments=[first])
    await services.changes.delete(olivia, room, sent.id, CLIENT)
    assert [r.public_id for r in await rows(services)] == [second]
    with pytest.raises(NotFound):
        await services.attachments.fetch(olivia.user_id, first)
    admin = await make_user(services, "root", admin=True)
    await services.shredder.delete_room(admin.id, room.id, CLIENT)
    assert await rows(services) == []  # the unsent one too


async def test_erasure_retention_and_orphans(services: Services, clock: ManualClock) -> None:
    room, olivia, alice = await setup(services)
    kept = await upload(services, alice, room, "kept.txt", text_file())
    await services.posting.send(alice, room, "a1", "mine", CLIENT, attachments=[kept])
    await upload(services, alice, room, "unsent.txt", text_file())
    orphan = await upload(services, olivia, room, "orphan.txt", text_file())
    await services.erasure.erase(None, alice.user_id, CLIENT)
    assert [r.public_id for r in await rows(services)] == [orphan]
    clock.advance(ORPHAN_SECONDS - 10)
    assert await services.attachments.purge_orphans(CLIENT) == 0
    clock.advance(20)
    assert await services.attachments.purge_orphans(CLIENT) == 1
    assert await rows(services) == []
    old = await upload(services, olivia, room, "old.txt", text_file())
    await services.posting.send(olivia, room, "o1", "old", CLIENT, attachments=[old])
    await services.retention.set_room_days(olivia.user_id, room.id, 1, CLIENT)
    clock.advance(2 * 86400)
    await services.retention.purge(CLIENT)
    assert await rows(services) == []


async def test_rotation_moves_files_and_destroys_the_old_key(services: Services,
                                                             clock: ManualClock,
                                                             tmp_path: Path) -> None:
    room, olivia, _ = await setup(services)
    photo = await upload(services, olivia, room, "photo.png", noise_png())
    notes = await upload(services, olivia, room, "notes.txt", text_file())
    await services.posting.send(olivia, room, "c1", "files", CLIENT, attachments=[photo])
    before = {p: (await services.attachments.fetch(olivia.user_id, p)).data
              for p in (photo, notes)}

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)

    outcome = await KeyRotation(services.db, clock, services.keyring, services.audit,
                                grace_seconds=5, sleep=sleep).run(Throttle(batch_size=5))
    assert outcome.destroyed == 1 and outcome.kept == 0 and outcome.unreadable == 0
    services.keyring.forget()
    assert {r.key_version for r in await rows(services)} == {2}
    for public_id, data in before.items():
        assert (await services.attachments.fetch(olivia.user_id, public_id)).data == data
    assert (await services.attachments.fetch(olivia.user_id, photo, thumbnail=True)).data
    async with services.db.unit() as db:
        old = (await db.execute(select(RoomKey).where(RoomKey.version == 1))).scalar_one()
    assert old.wrapped_key is None
    verified = await verify_database(services.db.url, services.keyring.master)
    assert verified.ok and verified.checked >= 1 + 2 + 2 + 1  # message, names, data, thumb


async def test_a_stale_room_version_seals_again(services: Services, clock: ManualClock) -> None:
    room, olivia, _ = await setup(services)

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)

    await KeyRotation(services.db, clock, services.keyring, services.audit, grace_seconds=5,
                      sleep=sleep).run(Throttle())
    services.keyring.forget()
    assert room.key_version == 1  # a cached RoomInfo from before the rotation
    public_id = await upload(services, olivia, room, "late.txt", text_file())
    async with services.db.unit() as db:
        version = await db.scalar(select(Attachment.key_version)
                                  .where(Attachment.public_id == public_id))
        count = await db.scalar(select(func.count()).select_from(Attachment))
    assert version == 2 and count == 1


async def test_removed_while_uploading_stores_nothing(services: Services) -> None:
    # The membership check before the body is read is repeated before the insert: the
    # body may take minutes, and a member removed meanwhile gets no file stored.
    room, _, alice = await setup(services)
    await services.attachments.check_uploader(Uploader(alice.user_id), room, CLIENT, on="test")
    await services.rooms.leave(alice.user_id, room.id, CLIENT)
    with pytest.raises(Forbidden) as refused:
        await services.attachments.upload(Uploader(alice.user_id), room, "late.txt",
                                          text_file(), CLIENT)
    assert refused.value.code == "not_a_member"
    assert await rows(services) == []
