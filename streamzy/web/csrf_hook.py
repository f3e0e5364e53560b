"""CSRF on the HTTP edge: unsafe requests must come from our pages and carry our token.

The checks themselves are in ``streamzy.guards.csrf``; this hook applies them to every
POST/PUT/PATCH/DELETE (bar routes marked ``@csrf_exempt``) and gives templates
``csrf_token()``.
"""

from __future__ import annotations

from collections.abc import Callable

from quart import Quart, Response, g, request

from streamzy.config import Settings
from streamzy.guards import csrf
from streamzy.guards.audit import AuditLog
from streamzy.web.current import info
from streamzy.web.errors import error_response
from streamzy.web.policy import csrf_exemption

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def token_source(settings: Settings) -> Callable[[], str]:
    """``csrf_token()``: the session's token, or before sign-in one bound to the anonymous cookie."""
    secret = settings.secret_key.get_secret_value()

    def csrf_token() -> str:
        session = g.get("session")
        if session is not None:
            return str(session.csrf_token)
        return csrf.anonymous_token(secret, g.get("anon_cookie", ""))

    return csrf_token


def install(app: Quart, *, settings: Settings, audit: AuditLog) -> None:
    """Refuse forged unsafe requests with 403 (audited); offer ``csrf_token()`` to templates."""
    csrf_token = token_source(settings)

    async def enforce_csrf() -> Response | None:
        if request.method not in csrf.UNSAFE_METHODS:
            return None
        view = app.view_functions.get(request.endpoint or "")
        if view is None or csrf_exemption(view):
            return None
        problem = csrf.origin_problem(
            sec_fetch_site=request.headers.get("Sec-Fetch-Site"),
            origin=request.headers.get("Origin"),
            referer=request.headers.get("Referer"),
            own_origin=f"{request.scheme}://{request.host}",
            allowed=settings.allowed_origins,
        )
        if problem is None:
            given = request.headers.get(csrf.HEADER)
            if given is None and request.mimetype in FORM_TYPES:
                given = (await request.form).get(csrf.FIELD)
            if not csrf.tokens_match(csrf_token(), given):
                problem = "missing-token" if not given else "bad-token"
        if problem is None:
            return None
        session = g.get("session")
        await audit.record("csrf_failed", info(), session.user_id if session else None,
                           reason=problem, path=request.path)
        return await error_response(
            403, "csrf_failed", "The form expired or came from another site. Reload and retry.")

    app.before_request(enforce_csrf)
    app.jinja_env.globals["csrf_token"] = csrf_token
