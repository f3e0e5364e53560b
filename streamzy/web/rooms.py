"""The signed-in pages for chat: the rooms list and a room."""

from __future__ import annotations

from quart import Blueprint, render_template, request

from streamzy.config import Settings
from streamzy.services.errors import NotFound
from streamzy.services.rooms import Rooms
from streamzy.web.current import session
from streamzy.web.policy import limited, signed_in


def blueprint(*, rooms: Rooms, settings: Settings) -> Blueprint:
    bp = Blueprint("rooms", __name__)

    @bp.get("/rooms")
    @signed_in
    @limited("pages")
    async def rooms_page() -> str:
        views = await rooms.visible(session().user_id)
        return await render_template("rooms.html", rooms=[v.public() for v in views],
                                     welcome=request.args.get("welcome") == "1")

    @bp.get("/rooms/<name>")
    @signed_in
    @limited("pages")
    async def room_page(name: str) -> str:
        room = await rooms.resolve(name[:64])
        current = session()
        if room.is_private and not await rooms.is_member(current.user_id, room.id):
            raise NotFound("unknown_room", "No such room.")  # don't confirm private rooms exist
        views = await rooms.visible(current.user_id)
        this = next((v for v in views if v.id == room.id), None)
        return await render_template(
            "room.html", room=room, rooms=[v.public() for v in views],
            title=this.public()["title"] if this is not None else f"#{room.name}",
            last_read=this.last_read_seq if this is not None and this.member else 0,
            me={"id": current.user_id, "username": current.username,
                "display_name": current.display_name},
            max_chars=settings.message_max_chars,
            max_file_bytes=settings.attachment_max_bytes,
            inactivity_seconds=settings.inactivity_logout_seconds)

    return bp
