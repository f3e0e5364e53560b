"""The signed-in pages for chat: the rooms list and a room; plus what every page template needs."""

from __future__ import annotations

import re
from typing import Any

from quart import Blueprint, render_template

from streamzy.services.errors import NotFound
from streamzy.web.current import services, session
from streamzy.web.policy import limited, signed_in

bp = Blueprint("rooms", __name__)

_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"),
             ("Chrome/", "Chrome"), ("Chromium/", "Chromium"), ("Safari/", "Safari"))
_SYSTEMS = (("Android", "Android"), ("iPhone", "iPhone"), ("iPad", "iPad"),
            ("Windows", "Windows"), ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"),
            ("Linux", "Linux"))


@bp.app_context_processor
def page_context() -> dict[str, Any]:
    """Every page: the browser inactivity limit (base.html hands it to app.js)."""
    return {"inactivity_seconds": services().settings.inactivity_logout_seconds}


@bp.app_template_filter("device")
def device_label(user_agent: str | None) -> str:
    """A short, human name for a session's device ("Firefox on Linux"); never trusted."""
    agent = (user_agent or "").strip()
    if not agent:
        return "Unknown device"
    browser = next((name for mark, name in _BROWSERS if mark in agent), "")
    system = next((name for mark, name in _SYSTEMS if mark in agent), "")
    if "HeadlessChrome/" in agent:
        browser = "Headless Chrome"
    if browser and system:
        return f"{browser} on {system}"
    if browser or system:
        return browser or system
    return re.split(r"[\s/;(]", agent, maxsplit=1)[0][:40] or "Unknown device"


@bp.get("/rooms")
@signed_in
@limited("pages")
async def rooms_page() -> str:
    views = await services().rooms.visible(session().user_id)
    return await render_template("rooms.html", rooms=[v.public() for v in views])


@bp.get("/rooms/<name>")
@signed_in
@limited("pages")
async def room_page(name: str) -> str:
    svc = services()
    room = await svc.rooms.resolve(name[:64])
    current = session()
    if room.is_private and not await svc.rooms.is_member(current.user_id, room.id):
        raise NotFound("unknown_room", "No such room.")  # don't confirm private rooms exist
    views = await svc.rooms.visible(current.user_id)
    return await render_template(
        "room.html", room=room, rooms=[v.public() for v in views],
        me={"id": current.user_id, "username": current.username,
            "display_name": current.display_name},
        max_chars=svc.settings.message_max_chars,
        inactivity_seconds=svc.settings.inactivity_logout_seconds)
