"""Admin pages for chat: rooms (create, invite) and bots (create, revoke)."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints
from quart import Blueprint, Response, redirect, render_template, request

from streamzy.guards.validation import InputError, Line, StrictModel, parse
from streamzy.services.bots import Bots
from streamzy.services.room_roles import RoomRoles
from streamzy.services.rooms import Rooms
from streamzy.web import ids
from streamzy.web.current import info, session
from streamzy.web.forms import EmptyForm
from streamzy.web.parsing import form_model
from streamzy.web.policy import admin_only, limited, step_up


class RoomForm(StrictModel):
    name: Annotated[Line, StringConstraints(min_length=1, max_length=64)]
    topic: Annotated[Line, StringConstraints(max_length=256)] = ""
    private: str | None = None


class InviteForm(StrictModel):
    username: Annotated[Line, StringConstraints(min_length=1, max_length=64)]


class BotForm(StrictModel):
    name: Annotated[Line, StringConstraints(min_length=3, max_length=32)]
    display_name: Annotated[Line, StringConstraints(min_length=1, max_length=64)]
    rooms: Annotated[str, StringConstraints(max_length=2000, pattern=r"^[0-9,]*$")] = ""


def blueprint(*, rooms: Rooms, bots: Bots, room_roles: RoomRoles) -> Blueprint:
    bp = Blueprint("admin_chat", __name__, url_prefix="/admin")

    @bp.get("/rooms")
    @admin_only
    @limited("pages")
    async def rooms_page() -> str:
        return await render_template("admin_rooms.html", rooms=await room_roles.overview())

    @bp.post("/rooms")
    @admin_only
    @limited("pages")
    async def create_room() -> Response:
        form = await form_model(RoomForm)
        room = await room_roles.create(session().user_id, form.name, form.topic,
                                       form.private is not None, info())
        return redirect(f"/admin/rooms?done=created&room={room.id}")  # type: ignore[return-value]

    @bp.post("/rooms/<id:room_id>/invite")
    @admin_only
    @limited("pages")
    async def invite(room_id: int) -> Response:
        form = await form_model(InviteForm)
        username = await room_roles.invite(session().user_id, room_id, form.username, info())
        return redirect(  # type: ignore[return-value]
            f"/admin/rooms?done=invited&room={room_id}&who={username}")

    @bp.get("/bots")
    @admin_only
    @limited("pages")
    async def bots_page() -> str:
        return await render_template("admin_bots.html", tokens=await bots.list(),
                                     rooms=await rooms.all_rooms())

    @bp.post("/bots")
    @admin_only
    @step_up
    @limited("pages")
    async def create_bot() -> str:
        form_data = await request.form
        data = {"name": form_data.get("name", ""),
                "display_name": form_data.get("display_name", ""),
                "rooms": ",".join(form_data.getlist("rooms"))}
        form = parse(BotForm, data)
        room_ids = [int(r) for r in form.rooms.split(",") if r]
        if not all(ids.in_range(r) for r in room_ids):
            raise InputError("invalid_input", {"rooms": "No such room."})
        user, token = await bots.create(session().user_id, form.name, form.display_name,
                                        room_ids, info())
        # Shown exactly once: only its SHA-256 is stored.
        return await render_template("admin_bot_created.html", user=user, token=token)

    @bp.post("/bots/tokens/<id:token_id>/revoke")
    @admin_only
    @limited("pages")
    async def revoke_bot(token_id: int) -> Response:
        await form_model(EmptyForm)
        await bots.revoke(session().user_id, token_id, info())
        return redirect(f"/admin/bots?done=revoked&token={token_id}")  # type: ignore[return-value]

    @bp.post("/bots/<id:bot_id>/dms/<any(on, off):state>")
    @admin_only
    @limited("pages")
    async def bot_dms(bot_id: int, state: str) -> Response:
        await form_model(EmptyForm)
        await bots.allow_dms(session().user_id, bot_id, state == "on", info())
        return redirect(f"/admin/bots?done=dms_{state}")  # type: ignore[return-value]

    return bp
