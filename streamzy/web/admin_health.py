"""The admin console's security health page (/admin/health) and the alert banner.

The page runs the health check (services/health_check.py) on each visit and shows every
item green, amber or red with the score. The banner lists the alerts of the last 24 hours
(audit events ``alert``) on every admin page until an admin acknowledges them.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from quart import Blueprint, Quart, Response, g, redirect, render_template, request

from streamzy.clock import as_utc
from streamzy.guards.audit import AuditLog, AuditQuery
from streamzy.services.alerts import ALERT_EVENT, Alerts
from streamzy.services.errors import as_service_error
from streamzy.services.health_check import HealthCheck
from streamzy.web.current import info, session
from streamzy.web.forms import EmptyForm
from streamzy.web.parsing import form_model
from streamzy.web.policy import admin_only, limited

log = logging.getLogger("streamzy.web")

BANNER_LIMIT = 5


def install(app: Quart, *, alerts: Alerts, audit: AuditLog) -> None:
    """On an admin's pages (GET): the recent alerts for the banner."""

    async def recent_alerts() -> None:
        current = g.get("session")
        if (current is None or not current.is_admin or current.must_change_password
                or request.method != "GET" or not request.path.startswith("/admin")):
            return
        try:
            since = await alerts.banner_since()
            found = await audit.search(AuditQuery(event=ALERT_EVENT, since=since),
                                       limit=BANNER_LIMIT)
        except Exception as exc:  # the banner is a courtesy: never a 500 for every admin page
            if as_service_error(exc) is None:
                log.exception("alert banner failed")
            else:
                log.warning("alert banner unavailable (%s)", type(exc).__name__)
            return
        # Strictly after: an alert raised in the same instant as the acknowledgement was seen.
        g.alerts = [{"at": entry.at, **_detail(entry.detail)} for entry in found
                    if as_utc(entry.at) > since]

    app.before_request(recent_alerts)


def _detail(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def blueprint(*, health: HealthCheck, alerts: Alerts) -> Blueprint:
    bp = Blueprint("admin_health", __name__, url_prefix="/admin")

    @bp.get("/health")
    @admin_only
    @limited("pages", "health_check")
    async def health_page() -> str:
        report = await health.run()
        return await render_template("admin_health.html", report=report)

    @bp.post("/alerts/acknowledge")
    @admin_only
    @limited("pages")
    async def acknowledge() -> Response:
        await form_model(EmptyForm)
        await alerts.acknowledge(session().user_id, info())
        return redirect("/admin/health?acknowledged=1")  # type: ignore[return-value]

    return bp
