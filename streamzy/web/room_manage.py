"""The pages for running a room: create one, and /rooms/<name>/manage for its members,
roles, invitations, mutes, kicks, bans, slow mode and archiving.

Each form posts to one route that calls one use case (the same ones the socket events
call), then redirects back to the page, which says what was done. Refusals are the service
errors' pages (403 with a stable code, 404, 409), never a 500.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import StringConstraints
from quart import Blueprint, Response, redirect, render_template

from streamzy.clock import Clock
from streamzy.config import Settings
from streamzy.guards.validation import Line, StrictModel
from streamzy.services.errors import NotFound
from streamzy.services.moderation import BAN_MAX_MINUTES, MUTE_MAX_MINUTES, Moderation
from streamzy.services.moderation import REASON_MAX as MOD_REASON_MAX
from streamzy.services.retention import Retention
from streamzy.services.room_roles import RoomRoles
from streamzy.services.rooms import RoomInfo, Rooms
from streamzy.web.admin_chat import InviteForm, RoomForm
from streamzy.web.current import info, session
from streamzy.web.forms import EmptyForm
from streamzy.web.parsing import form_model
from streamzy.web.policy import limited, signed_in

Digits = Annotated[str, StringConstraints(min_length=1, max_length=9, pattern=r"^\d+$")]
Reason = Annotated[Line, StringConstraints(max_length=MOD_REASON_MAX)]
# What the forms offer (the use cases take any value within their limits).
MUTE_CHOICES = ((10, "10 minutes"), (60, "1 hour"), (24 * 60, "1 day"), (7 * 24 * 60, "1 week"))
BAN_CHOICES = ((60, "1 hour"), (24 * 60, "1 day"), (7 * 24 * 60, "1 week"),
               (30 * 24 * 60, "30 days"), (0, "For good"))
SLOW_CHOICES = ((0, "Off"), (5, "5 seconds"), (10, "10 seconds"), (30, "30 seconds"),
                (60, "1 minute"), (300, "5 minutes"), (900, "15 minutes"), (3600, "1 hour"))


class MuteForm(StrictModel):
    minutes: Digits
    reason: Reason = ""


class ReasonForm(StrictModel):
    reason: Reason = ""


class BanForm(StrictModel):
    minutes: Digits  # 0: for good
    reason: Reason = ""


class BanByNameForm(BanForm):
    username: Annotated[Line, StringConstraints(min_length=1, max_length=64)]


class RoleForm(StrictModel):
    role: Literal["owner", "moderator", "member"]


class SlowModeForm(StrictModel):
    seconds: Digits


class ArchiveForm(StrictModel):
    archived: Literal["1", "0"]


def _minutes(value: str, most: int) -> int:
    return min(int(value), most + 1)  # past the limit stays past it: the use case refuses


def blueprint(*, rooms: Rooms, room_roles: RoomRoles, moderation: Moderation,
              settings: Settings, clock: Clock, retention: Retention) -> Blueprint:
    bp = Blueprint("room_manage", __name__)

    @bp.app_context_processor
    def room_creation() -> dict[str, Any]:
        """rooms.html offers the create form to whoever the setting allows."""
        return {"room_creation_open": settings.room_creation == "everyone"}

    async def room_named(name: str) -> RoomInfo:
        return await rooms.resolve(name[:64])

    def back(room: RoomInfo, done: str, user: int | None = None) -> Response:
        target = f"/rooms/{room.name}/manage?done={done}"
        return redirect(target + (f"&user={user}" if user else ""))  # type: ignore[return-value]

    @bp.post("/rooms")
    @signed_in
    @limited("pages")
    async def create_room() -> Response:
        form = await form_model(RoomForm)
        room = await room_roles.create(session().user_id, form.name, form.topic,
                                       form.private is not None, info())
        return back(room, "created")

    @bp.get("/rooms/<name>/manage")
    @signed_in
    @limited("pages")
    async def manage(name: str) -> str:
        room = await room_named(name)
        me = await room_roles.standing(session().user_id, room.id)
        # Not a member (and no admin of it): as if there were no such room, so a private
        # room's name is not confirmed; direct conversations have no such page.
        if me.room.is_dm or (not me.member and not me.can_moderate):
            raise NotFound("unknown_room", "No such room.")
        members = await room_roles.members(room.id)
        bans = await moderation.bans(room.id) if me.can_moderate else []
        return await render_template(
            "room_manage.html", room=me.room, me=me, members=members, bans=bans,
            now=clock.now(), mute_choices=MUTE_CHOICES, ban_choices=BAN_CHOICES,
            slow_choices=SLOW_CHOICES, reason_max=MOD_REASON_MAX,
            retention=await retention.describe(room.id))

    @bp.post("/rooms/<name>/invite")
    @signed_in
    @limited("pages")
    async def invite(name: str) -> Response:
        room = await room_named(name)
        form = await form_model(InviteForm)
        username = await room_roles.invite(session().user_id, room.id, form.username, info())
        return redirect(  # type: ignore[return-value]
            f"/rooms/{room.name}/manage?done=invited&who={username}")

    @bp.post("/rooms/<name>/members/<id:user_id>/role")
    @signed_in
    @limited("pages")
    async def set_role(name: str, user_id: int) -> Response:
        room = await room_named(name)
        form = await form_model(RoleForm)
        await room_roles.set_role(session().user_id, room.id, user_id, form.role, info())
        return back(room, f"role_{form.role}", user_id)

    @bp.post("/rooms/<name>/members/<id:user_id>/mute")
    @signed_in
    @limited("pages")
    async def mute(name: str, user_id: int) -> Response:
        room = await room_named(name)
        form = await form_model(MuteForm)
        await moderation.mute(session().user_id, room.id, user_id,
                              _minutes(form.minutes, MUTE_MAX_MINUTES), form.reason, info())
        return back(room, "muted", user_id)

    @bp.post("/rooms/<name>/members/<id:user_id>/unmute")
    @signed_in
    @limited("pages")
    async def unmute(name: str, user_id: int) -> Response:
        room = await room_named(name)
        await form_model(EmptyForm)
        await moderation.unmute(session().user_id, room.id, user_id, info())
        return back(room, "unmuted", user_id)

    @bp.post("/rooms/<name>/members/<id:user_id>/kick")
    @signed_in
    @limited("pages")
    async def kick(name: str, user_id: int) -> Response:
        room = await room_named(name)
        form = await form_model(ReasonForm)
        await moderation.kick(session().user_id, room.id, user_id, form.reason, info())
        return back(room, "kicked", user_id)

    @bp.post("/rooms/<name>/members/<id:user_id>/ban")
    @signed_in
    @limited("pages")
    async def ban(name: str, user_id: int) -> Response:
        room = await room_named(name)
        form = await form_model(BanForm)
        minutes = _minutes(form.minutes, BAN_MAX_MINUTES)
        await moderation.ban(session().user_id, room.id, user_id, minutes or None,
                             form.reason, info())
        return back(room, "banned", user_id)

    @bp.post("/rooms/<name>/bans")
    @signed_in
    @limited("pages")
    async def ban_by_name(name: str) -> Response:
        room = await room_named(name)
        form = await form_model(BanByNameForm)
        minutes = _minutes(form.minutes, BAN_MAX_MINUTES)
        user_id = await moderation.ban_by_name(session().user_id, room.id, form.username,
                                               minutes or None, form.reason, info())
        return back(room, "banned", user_id)

    @bp.post("/rooms/<name>/bans/<id:user_id>/unban")
    @signed_in
    @limited("pages")
    async def unban(name: str, user_id: int) -> Response:
        room = await room_named(name)
        await form_model(EmptyForm)
        await moderation.unban(session().user_id, room.id, user_id, info())
        return back(room, "unbanned", user_id)

    @bp.post("/rooms/<name>/slow-mode")
    @signed_in
    @limited("pages")
    async def slow_mode(name: str) -> Response:
        room = await room_named(name)
        form = await form_model(SlowModeForm)
        await moderation.set_slow_mode(session().user_id, room.id,
                                       min(int(form.seconds), 10**6), info())
        return back(room, "slow_mode")

    @bp.post("/rooms/<name>/archive")
    @signed_in
    @limited("pages")
    async def archive(name: str) -> Response:
        room = await room_named(name)
        form = await form_model(ArchiveForm)
        archived = form.archived == "1"
        await room_roles.archive(session().user_id, room.id, archived, info())
        return back(room, "archived" if archived else "unarchived")

    @bp.post("/rooms/<name>/leave")
    @signed_in
    @limited("pages")
    async def leave(name: str) -> Response:
        room = await room_named(name)
        await form_model(EmptyForm)
        await room_roles.leave(session().user_id, room.id, info())
        return redirect("/rooms")  # type: ignore[return-value]

    return bp
