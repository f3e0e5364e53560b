"""Pages that destroy data on purpose: an admin deletes a room (crypto-shredding) or
erases a person; a member deletes a direct conversation for everyone in it; a room's
owners set how long its messages are kept.

Every destructive action has a confirmation page first, where the admin types the room's
name or the username (the use case checks it again), posts with the CSRF token and spends
the ``data_lifecycle`` rate limit as well as ``pages``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import StringConstraints
from quart import Blueprint, Response, redirect, render_template

from streamzy.guards.validation import Line, StrictModel
from streamzy.services.accounts import Accounts
from streamzy.services.direct import DirectMessages
from streamzy.services.erasure import Erasure
from streamzy.services.errors import NotFound
from streamzy.services.retention import Retention
from streamzy.services.room_roles import RoomRoles
from streamzy.services.rooms import Rooms
from streamzy.services.shredding import Shredder
from streamzy.web.current import info, session
from streamzy.web.forms import EmptyForm
from streamzy.web.parsing import form_model
from streamzy.web.policy import admin_only, limited, signed_in, step_up

LIMITS = ("pages", "data_lifecycle")


class ConfirmForm(StrictModel):
    confirm: Annotated[Line, StringConstraints(min_length=1, max_length=64)]


class EraseForm(ConfirmForm):
    messages: Literal["delete", "anonymise"] = "delete"


class RetentionForm(StrictModel):
    # Empty: the server's default.
    days: Annotated[str, StringConstraints(max_length=5, pattern=r"^\d*$")] = ""


def blueprint(*, rooms: Rooms, room_roles: RoomRoles, accounts: Accounts,
              direct: DirectMessages, shredder: Shredder, erasure: Erasure,
              retention: Retention) -> Blueprint:
    bp = Blueprint("data_lifecycle", __name__)

    async def plain_room(room_id: int):  # type: ignore[no-untyped-def]
        room = await rooms.get(room_id)
        if room is None or room.is_dm:
            raise NotFound("unknown_room", "No such room.")
        return room

    @bp.get("/admin/rooms/<id:room_id>/delete")
    @admin_only
    @step_up  # before the name is typed, so the proof is asked for first
    @limited("pages")
    async def confirm_delete_room(room_id: int) -> str:
        room = await plain_room(room_id)
        members = await room_roles.members(room.id)
        return await render_template("admin_room_delete.html", room=room,
                                     members=members.total)

    @bp.post("/admin/rooms/<id:room_id>/delete")
    @admin_only
    @step_up
    @limited(*LIMITS)
    async def delete_room(room_id: int) -> Response:
        room = await plain_room(room_id)
        form = await form_model(ConfirmForm)
        done = await shredder.delete_room(session().user_id, room.id, info(),
                                          confirm=form.confirm)
        return redirect(  # type: ignore[return-value]
            f"/admin/rooms?done=deleted&name={done.name}&count={done.messages}")

    @bp.get("/admin/users/<id:user_id>/erase")
    @admin_only
    @step_up
    @limited("pages")
    async def confirm_erase(user_id: int) -> str:
        user = await accounts.get(user_id)
        if user is None or user.erased_at is not None:
            raise NotFound("no_user", "No such account.")
        return await render_template("admin_user_erase.html", user=user,
                                     me=session().user_id)

    @bp.post("/admin/users/<id:user_id>/erase")
    @admin_only
    @step_up
    @limited(*LIMITS)
    async def erase(user_id: int) -> Response:
        form = await form_model(EraseForm)
        await erasure.erase(session().user_id, user_id, info(), messages=form.messages,
                            confirm=form.confirm)
        return redirect(  # type: ignore[return-value]
            f"/admin/users?done=erased&user={user_id}")

    async def my_dm(name: str):  # type: ignore[no-untyped-def]
        room = await rooms.resolve(name[:64])
        if not room.is_dm or not await rooms.is_member(session().user_id, room.id):
            raise NotFound("unknown_room", "No such room.")
        return room

    @bp.get("/rooms/<name>/delete")
    @signed_in
    @limited("pages")
    async def confirm_delete_dm(name: str) -> str:
        room = await my_dm(name)
        people = [p for p in await direct.members(room.id) if p.id != session().user_id]
        return await render_template("dm_delete.html", room=room, people=people)

    @bp.post("/rooms/<name>/delete")
    @signed_in
    @limited(*LIMITS)
    async def delete_dm(name: str) -> Response:
        room = await my_dm(name)
        await form_model(EmptyForm)
        await shredder.delete_direct(session().user_id, room.id, info())
        return redirect("/rooms?done=dm_deleted")  # type: ignore[return-value]

    @bp.post("/rooms/<name>/retention")
    @signed_in
    @limited(*LIMITS)
    async def set_retention(name: str) -> Response:
        room = await rooms.resolve(name[:64])
        form = await form_model(RetentionForm)
        days = int(form.days) if form.days else None
        await retention.set_room_days(session().user_id, room.id, days, info())
        return redirect(f"/rooms/{room.name}/manage?done=retention")  # type: ignore[return-value]

    return bp
