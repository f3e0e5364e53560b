"""Request hooks that apply the guards to every HTTP request, and the error pages."""

from __future__ import annotations

import logging
import math
import secrets
from typing import Any
from urllib.parse import quote

from quart import Quart, Response, current_app, g, jsonify, redirect, render_template, request
from quart_rate_limiter import RateLimiter as QuartRateLimiter
from quart_rate_limiter import RateLimitExceeded
from werkzeug.exceptions import HTTPException, ServiceUnavailable

from streamzy.guards import csrf
from streamzy.guards.ratelimit import FAIL_CLOSED
from streamzy.guards.sessions import Resolution
from streamzy.guards.validation import InputError
from streamzy.services.errors import ServiceError
from streamzy.storage.db import is_unavailable
from streamzy.web.current import info, services, wants_json
from streamzy.web.policy import (
    AUTH_ATTR,
    CSRF_EXEMPT_ATTR,
    LIMITS_ATTR,
    PASSWORD_CHANGE_ATTR,
)

log = logging.getLogger("streamzy.web")


class HttpRateLimiter(QuartRateLimiter):
    """quart-rate-limiter's hooks and 429 semantics, counted by our GCRA guard.

    The library's own key (``access_route[0]``) trusts a client-sent X-Forwarded-For and
    its store is neither atomic nor clock-injectable; ours keys on the ASGI client address
    after ProxyFix and counts through one atomic store shared with the socket edge.
    """

    async def _before_request(self) -> None:
        view = current_app.view_functions.get(request.endpoint or "")
        names: tuple[str, ...] = getattr(view, LIMITS_ATTR, ())
        svc = services()
        for name in names:
            key = f"{name}:{self.key_for(name)}"
            decision = await svc.limiter.hit(key, svc.settings.rate(name),
                                             fail_closed=name in FAIL_CLOSED)
            if decision.unavailable:
                await svc.audit_throttled("rate-store-down", "rate_limit_unavailable", info(),
                                          None, limit=name, path=request.path)
                raise ServiceUnavailable(retry_after=math.ceil(decision.retry_after))
            if not decision.allowed:
                session = g.get("session")
                await svc.audit_throttled(key, "rate_limited", info(),
                                          session.user_id if session else None,
                                          limit=name, path=request.path)
                raise RateLimitExceeded(max(1, math.ceil(decision.retry_after)))

    @staticmethod
    def key_for(name: str) -> str:
        bot = g.get("bot")
        if name == "api" and bot is not None:
            return f"bot:{bot.token_id}"
        client = request.scope.get("client") or ("unknown", 0)
        return f"ip:{client[0]}"

    async def _after_request(self, response: Response) -> Response:
        return response


def _view() -> Any:
    return current_app.view_functions.get(request.endpoint or "")


STATIC_ENDPOINT = "health.static_file"


async def load_session() -> None:
    svc = services()
    if request.endpoint == STATIC_ENDPOINT:  # public files: no session, no database
        g.session = g.bot = None
        g.session_end_reason = None
        g.anon_cookie = ""
        return
    token = request.cookies.get(svc.settings.session_cookie_name)
    resolution = await svc.sessions.resolve(token) if token else Resolution(None, "missing")
    g.session = resolution.session
    g.session_end_reason = None
    if token and resolution.reason in ("idle", "absolute", "disabled"):
        g.session_end_reason = resolution.reason
        await svc.audit("session_expired", info(), None, reason=resolution.reason)
    if g.session is not None and g.session.is_admin and request.method == "GET":
        g.pending_count = await svc.applications.pending_count()
    g.bot = None
    authorization = request.headers.get("Authorization", "")
    if authorization.startswith("Bearer ") and request.path.startswith("/api/"):
        g.bot = await svc.bots.resolve(authorization[7:].strip())
    g.anon_cookie = request.cookies.get(svc.settings.anon_cookie_name) or ""
    if len(g.anon_cookie) != 43:
        g.anon_cookie = secrets.token_urlsafe(32)
        g.set_anon_cookie = True


def csrf_token() -> str:
    """The token forms and scripts must send back with state-changing requests."""
    session = g.get("session")
    if session is not None:
        return str(session.csrf_token)
    return csrf.anonymous_token(services().settings.secret_key.get_secret_value(),
                                g.get("anon_cookie", ""))


def _login_redirect(reason: str | None) -> Response:
    target = "/login?next=" + quote(request.full_path.rstrip("?"), safe="/")
    if reason:
        target += f"&reason={reason}"
    return redirect(target)  # type: ignore[return-value]


async def enforce_auth() -> Response | None:
    view = _view()
    if view is None:
        return None  # 404/405 are raised by routing itself
    rule = getattr(view, AUTH_ATTR, None)
    session = g.get("session")
    if rule == "public":
        return None
    if rule == "bot":
        if g.get("bot") is None:
            await services().audit_throttled(f"api-auth:{info().ip}", "api_auth_failed",
                                             info(), None, path=request.path)
            return await error_response(401, "invalid_token",
                                        "Send a valid bot token: Authorization: Bearer szb_...")
        return None
    if rule not in ("user", "admin"):
        log.error("route %s has no auth rule; refusing", request.endpoint)
        return await error_response(403, "forbidden", "This page is not available.")
    if session is None:
        if wants_json():
            return await error_response(401, "not_signed_in", "Sign in first.")
        return _login_redirect(g.get("session_end_reason"))
    if session.must_change_password and not getattr(view, PASSWORD_CHANGE_ATTR, False):
        return redirect("/account/password?first=1")  # type: ignore[return-value]
    if rule == "admin" and not session.is_admin:
        await services().audit("access_denied", info(), session.user_id, path=request.path)
        return await error_response(403, "forbidden", "Admins only.")
    return None


async def enforce_csrf() -> Response | None:
    if request.method not in csrf.UNSAFE_METHODS:
        return None
    view = _view()
    if view is None or getattr(view, CSRF_EXEMPT_ATTR, None):
        return None
    svc = services()
    problem = csrf.origin_problem(
        sec_fetch_site=request.headers.get("Sec-Fetch-Site"),
        origin=request.headers.get("Origin"),
        referer=request.headers.get("Referer"),
        own_origin=f"{request.scheme}://{request.host}",
        allowed=svc.settings.allowed_origins,
    )
    if problem is None:
        given = request.headers.get(csrf.HEADER)
        if given is None and request.mimetype in ("application/x-www-form-urlencoded",
                                                  "multipart/form-data"):
            given = (await request.form).get(csrf.FIELD)
        if not csrf.tokens_match(csrf_token(), given):
            problem = "missing-token" if not given else "bad-token"
    if problem is None:
        return None
    session = g.get("session")
    await svc.audit("csrf_failed", info(), session.user_id if session else None,
                    reason=problem, path=request.path)
    return await error_response(403, "csrf_failed",
                                "The form expired or came from another site. Reload and retry.")


async def set_cookies(response: Response) -> Response:
    if g.get("set_anon_cookie") and request.endpoint != STATIC_ENDPOINT:
        settings = services().settings
        response.set_cookie(settings.anon_cookie_name, g.anon_cookie, httponly=True,
                            samesite="Lax", secure=settings.cookie_secure, path="/")
    return response


async def error_response(status: int, code: str, message: str,
                         headers: dict[str, str] | None = None) -> Response:
    if wants_json():
        response = jsonify({"ok": False, "code": code, "message": message})
    else:
        body = await render_template("error.html", status=status, code=code, message=message,
                                     request_id=request.scope.get("streamzy.request_id", ""))
        response = Response(body, mimetype="text/html")
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


_CODES = {400: "bad_request", 401: "not_signed_in", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type",
          429: "rate_limited", 503: "unavailable"}
_MESSAGES_EXTRA = {415: "Send this as a form (or JSON where the API says so)."}
_MESSAGES = {400: "The request could not be understood.", 404: "There is nothing here.",
             405: "That method is not allowed here.", 413: "The request is too large.",
             429: "Too many requests. Wait a little and try again.",
             503: "This is temporarily unavailable. Try again in a few seconds."}


async def handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    headers = {}
    if isinstance(error, RateLimitExceeded | ServiceUnavailable) and error.retry_after:
        headers["Retry-After"] = str(error.retry_after)
    return await error_response(status, _CODES.get(status, "error"),
                                _MESSAGES.get(status) or _MESSAGES_EXTRA.get(status)
                                or "The request failed.", headers)


async def handle_input_error(error: InputError) -> Response:
    status = 400
    detail = "; ".join(f"{k}: {v}" for k, v in error.fields.items())
    return await error_response(status, error.code,
                                f"{error.message} {detail}".strip())


_KIND_STATUS = {"not_found": 404, "conflict": 409, "forbidden": 403, "invalid": 400,
                "unavailable": 503}


async def handle_service_error(error: ServiceError) -> Response:
    return await error_response(_KIND_STATUS.get(error.kind, 400), error.code, error.message)


async def handle_unexpected(error: Exception) -> Response:
    if is_unavailable(error):
        log.warning("database unavailable on %s %s: %s", request.method, request.path,
                    type(error).__name__)
        return await error_response(503, "unavailable",
                                    "The service cannot reach its database. Retry shortly.",
                                    {"Retry-After": "5"})
    log.exception("unhandled error on %s %s", request.method, request.path, exc_info=error)
    return await error_response(500, "internal_error",
                                "Something went wrong on our side. It has been logged.")


def install(app: Quart) -> None:
    limiter = HttpRateLimiter()
    app.before_request(load_session)
    limiter.init_app(app)  # after the session is known, before anything expensive
    app.before_request(enforce_auth)
    app.before_request(enforce_csrf)
    app.after_request(set_cookies)
    app.register_error_handler(HTTPException, handle_http_exception)  # type: ignore[arg-type]
    app.register_error_handler(InputError, handle_input_error)  # type: ignore[arg-type]
    app.register_error_handler(ServiceError, handle_service_error)  # type: ignore[arg-type]
    app.register_error_handler(Exception, handle_unexpected)
    app.jinja_env.globals["csrf_token"] = csrf_token
