"""What every page template can use, registered once on the app.

The inactivity limit and the sign-in notices (for app.js), the admin badge, and the
``device`` filter.
"""

from __future__ import annotations

import re
from typing import Any

from quart import Quart, g, request

from streamzy.config import Settings
from streamzy.services.applications import Applications
from streamzy.web import sign_in_notices

_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"),
             ("Chrome/", "Chrome"), ("Chromium/", "Chromium"), ("Safari/", "Safari"))
_SYSTEMS = (("Android", "Android"), ("iPhone", "iPhone"), ("iPad", "iPad"),
            ("Windows", "Windows"), ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"),
            ("Linux", "Linux"))


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


def install(app: Quart, *, settings: Settings, applications: Applications) -> None:
    """Register the filter, the page context and the hook that counts pending applications."""

    async def count_pending_for_admins() -> None:
        """The navigation badge: applications waiting, on an admin's pages (GET only)."""
        session = g.get("session")
        # No admin menu until the password is changed and any owed second factor set up.
        if (session is not None and session.is_admin and not session.must_change_password
                and not session.must_enrol and request.method == "GET"):
            g.pending_count = await applications.pending_count()

    notices = sign_in_notices.client_table()

    def page_context() -> dict[str, Any]:
        """Every page: the values base.html hands to app.js."""
        return {"inactivity_seconds": settings.inactivity_logout_seconds,
                "sign_in_notices": notices}

    app.before_request(count_pending_for_admins)
    app.context_processor(page_context)
    app.add_template_filter(device_label, "device")
