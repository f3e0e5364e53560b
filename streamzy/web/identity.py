"""Who is asking, read once per request: the browser session, a bot token, the anonymous cookie.

Everything later (limits, access rules, CSRF, templates) reads the result from ``g``.
Static files skip all of it: no cookie is read and the database is not touched.
"""

from __future__ import annotations

import secrets

from quart import Quart, Response, g, request

from streamzy import logs
from streamzy.config import Settings
from streamzy.guards.audit import AuditLog
from streamzy.guards.sessions import EndReason, Resolution, SessionStore
from streamzy.services.bots import Bots
from streamzy.web.current import info
from streamzy.web.static_files import STATIC_ENDPOINT

ANON_COOKIE_CHARS = 43  # secrets.token_urlsafe(32)
# A cookie for a session that ended this way sends the browser to sign in with a notice.
EXPLAINED_ENDINGS = (EndReason.IDLE, EndReason.ABSOLUTE, EndReason.DISABLED)


def install(app: Quart, *, settings: Settings, sessions: SessionStore, bots: Bots,
            audit: AuditLog) -> None:
    """Resolve the caller before anything else runs; set the anonymous cookie after."""

    async def load_identity() -> None:
        g.session = g.bot = None
        g.session_end_reason = None
        g.anon_cookie = ""
        if request.endpoint == STATIC_ENDPOINT:  # public files: no session, no database
            return
        token = request.cookies.get(settings.session_cookie_name)
        resolution = await sessions.resolve(token) if token else Resolution(None, "missing")
        g.session = resolution.session
        if token and resolution.reason in EXPLAINED_ENDINGS:
            g.session_end_reason = resolution.reason
            await audit.record("session_expired", info(), None, reason=resolution.reason)
        authorization = request.headers.get("Authorization", "")
        if authorization.startswith("Bearer ") and request.path.startswith("/api/"):
            g.bot = await bots.resolve(authorization[7:].strip())
        caller = g.session or g.bot
        logs.bind_user(caller.user_id if caller is not None else None)  # for every log line
        g.anon_cookie = request.cookies.get(settings.anon_cookie_name) or ""
        if len(g.anon_cookie) != ANON_COOKIE_CHARS:
            g.anon_cookie = secrets.token_urlsafe(32)
            g.set_anon_cookie = True

    async def set_anonymous_cookie(response: Response) -> Response:
        if g.get("set_anon_cookie") and request.endpoint != STATIC_ENDPOINT:
            response.set_cookie(settings.anon_cookie_name, g.anon_cookie, httponly=True,
                                samesite="Lax", secure=settings.cookie_secure, path="/")
        return response

    app.before_request(load_identity)
    app.after_request(set_anonymous_cookie)
