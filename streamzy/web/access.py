"""Who may reach a route: its ``@public``, ``@signed_in``, ``@admin_only`` or ``@bot_token`` rule.

A route without a rule is refused (and logged), so forgetting one fails closed; the policy
test makes sure it never ships that way.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from urllib.parse import quote, urlsplit

from quart import Quart, Response, current_app, g, redirect, request
from werkzeug.exceptions import NotFound

from streamzy.guards.audit import AuditLog
from streamzy.guards.sessions import SessionStore
from streamzy.web.current import info, wants_json
from streamzy.web.errors import error_response
from streamzy.web.policy import (
    auth_rule,
    reachable_before_enrolment,
    reachable_before_password_change,
    wants_step_up,
)
from streamzy.web.sign_in_notices import for_ending

log = logging.getLogger("streamzy.web")
FIRST_SIGN_IN_PAGE = "/account/password?first=1"
ENROL_PAGE = "/account/second-factor?required=1"
STEP_UP_PAGE = "/account/confirm"
STEP_UP_EXTENSION = "streamzy_step_up"  # app.extensions: (SessionStore, seconds)


def _here() -> str:
    """Where to come back to after the step-up page: this page for a GET; for a form
    post, the page the form was on (same site only), since a POST cannot be replayed by a
    redirect."""
    if request.method == "GET":
        return request.full_path.rstrip("?")
    try:
        referrer = urlsplit(request.headers.get("Referer", ""))
    except ValueError:  # e.g. "http://[bad": a malformed header is no page to return to
        return "/"
    if referrer.netloc == request.host and referrer.path.startswith("/"):
        return referrer.path + (f"?{referrer.query}" if referrer.query else "")
    return "/"


def _login_redirect(ending: str | None) -> Response:
    """To sign in and back here; with a notice when the browser's session just ended."""
    target = "/login?next=" + quote(request.full_path.rstrip("?"), safe="/")
    if ending:
        target += f"&reason={for_ending(ending)}"
    return redirect(target)  # type: ignore[return-value]


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8")).digest()


def install(app: Quart, *, audit: AuditLog, sessions: SessionStore, step_up_seconds: int,
            metrics_token: str = "") -> None:
    """Refuse (401/403) or redirect (to sign in, to the owed password change, to the owed
    second-factor enrolment, or to the step-up page before a dangerous action)."""
    expected = _digest(metrics_token) if metrics_token else None

    async def metrics_access() -> None:
        """The metrics token or a 404 exactly like an unknown path's; a token that does
        not match is audited (once per address and minute, with the repeats counted)."""
        given = request.headers.get("Authorization", "")
        token = given[7:].strip() if given.startswith("Bearer ") else ""
        # Digests of equal length: the comparison time says nothing about the token.
        if expected is not None and token and hmac.compare_digest(_digest(token), expected):
            return
        if given:
            await audit.record_throttled(f"metrics-auth:{info().ip}", "metrics_auth_failed",
                                         info(), None, path=request.path)
        raise NotFound()

    async def enforce_access() -> Response | None:
        view = app.view_functions.get(request.endpoint or "")
        if view is None:
            return None  # 404/405 are raised by routing itself
        rule = auth_rule(view)
        session = g.get("session")
        if rule == "public":
            return None
        if rule == "metrics":
            await metrics_access()
            return None
        if rule == "bot":
            if g.get("bot") is None:
                await audit.record_throttled(f"api-auth:{info().ip}", "api_auth_failed",
                                             info(), None, path=request.path)
                return await error_response(
                    401, "invalid_token", "Send a valid bot token: Authorization: Bearer szb_...")
            return None
        if rule not in ("user", "admin"):
            log.error("route %s has no auth rule; refusing", request.endpoint)
            return await error_response(403, "forbidden", "This page is not available.")
        if session is None:
            if wants_json():
                return await error_response(401, "not_signed_in", "Sign in first.")
            return _login_redirect(g.get("session_end_reason"))
        if session.must_change_password and not reachable_before_password_change(view):
            return redirect(FIRST_SIGN_IN_PAGE)  # type: ignore[return-value]
        # The owed password change comes first: its page (and sign-out) stay reachable
        # until it is done, then enrolment is owed.
        if (session.must_enrol and not session.must_change_password
                and not reachable_before_enrolment(view)):
            if wants_json():
                return await error_response(403, "second_factor_required",
                                            "Set up a second factor first.")
            return redirect(ENROL_PAGE)  # type: ignore[return-value]
        if rule == "admin" and not session.is_admin:
            await audit.record("access_denied", info(), session.user_id, path=request.path)
            return await error_response(403, "forbidden", "Admins only.")
        if wants_step_up(view):
            return await step_up_refusal()
        return None

    app.extensions[STEP_UP_EXTENSION] = (sessions, step_up_seconds)
    app.before_request(enforce_access)


async def step_up_refusal() -> Response | None:
    """None when this request's session proved its owner within STREAMZY_STEP_UP_SECONDS;
    else the step-up page (303, back here afterwards) or, for JSON, 403 step_up_required.

    The ``@step_up`` hook calls it for whole routes; a route that does several things (the
    admin's user actions) calls it itself for the dangerous ones."""
    sessions, seconds = current_app.extensions[STEP_UP_EXTENSION]
    session = g.get("session")
    if session is not None and sessions.recently_proved(session, seconds):
        return None
    if wants_json():
        return await error_response(403, "step_up_required", "Confirm it is you first.")
    target = STEP_UP_PAGE + "?next=" + quote(_here(), safe="/")
    return redirect(target, 303)  # type: ignore[return-value]
