"""Sign in, sign out, change password, and the account page with its sessions."""

from __future__ import annotations

import re
from urllib.parse import quote

from quart import Blueprint, Response, redirect, render_template, request

from streamzy.config import Settings
from streamzy.guards.audit import AuditLog
from streamzy.guards.sessions import EndReason, SessionStore
from streamzy.guards.validation import InputError
from streamzy.services.accounts import Accounts
from streamzy.services.errors import ServiceError
from streamzy.web.access import FIRST_SIGN_IN_PAGE
from streamzy.web.current import info, session
from streamzy.web.forms import EmptyForm, LoginForm, PasswordForm
from streamzy.web.parsing import form_model
from streamzy.web.policy import (
    allowed_before_enrolment,
    allowed_before_password_change,
    limited,
    public,
    signed_in,
)
from streamzy.web.sign_in import start_session
from streamzy.web.sign_in_notices import Notice, text_for

GENERIC_LOGIN_ERROR = ("Wrong username or password, or the account is temporarily locked. "
                       "Wait a few minutes before trying again.")
# Where a new member lands once their first password is chosen: chat, with a welcome.
WELCOME_PAGE = "/rooms?welcome=1"
_ROOM_PAGE = re.compile(r"/rooms/[a-z0-9_-]{1,64}")  # the names Rooms accepts


def _safe_next(target: str) -> str:
    """Only same-site relative paths; never //host or a scheme (no open redirect).

    Browsers drop tabs and newlines from URLs, so ``/<TAB>/evil.example`` would become
    ``//evil.example``: only printable ASCII is accepted.
    """
    if (target.startswith("/") and not target.startswith("//") and "\\" not in target
            and target.isascii() and target.isprintable()):
        return target
    return "/"


def _room_page(target: str) -> str:
    """``target`` if it is one room's page (a link followed before signing in), else ""."""
    return target if _ROOM_PAGE.fullmatch(target) else ""


def blueprint(*, settings: Settings, accounts: Accounts, sessions: SessionStore,
              audit: AuditLog) -> Blueprint:
    bp = Blueprint("auth", __name__)
    cookie_name = settings.session_cookie_name

    @bp.get("/login")
    @public
    @limited("pages")
    async def login_form() -> str:
        notice = text_for(request.args.get("reason", ""))
        return await render_template("login.html", notice=notice,
                                     next=_safe_next(request.args.get("next", "/")))

    @bp.post("/login")
    @public
    @limited("login")
    async def login() -> Response | tuple[str, int]:
        try:
            form = await form_model(LoginForm)
        except InputError as exc:
            return await render_template("login.html", error="Enter your username and password.",
                                         fields=exc.fields, next="/"), 400
        outcome = await accounts.authenticate(form.username, form.password, info())
        if outcome.user is None:
            message = GENERIC_LOGIN_ERROR
            if outcome.reason == "expired_one_time_password":
                message = ("Your one-time password has expired. Ask an administrator "
                           "for a new one.")
            return await render_template("login.html", error=message, username=form.username,
                                         next=_safe_next(form.next)), 401
        target = _safe_next(form.next)
        if outcome.user.must_change_password:  # the room asked for waits for the new password
            room = _room_page(target)
            target = FIRST_SIGN_IN_PAGE + (f"&next={quote(room, safe='/')}" if room else "")
        return await start_session(settings, sessions, outcome.user.id, "password", target)

    @bp.post("/logout")
    @signed_in
    @allowed_before_password_change
    @allowed_before_enrolment
    @limited("pages")
    async def logout() -> Response:
        current = session()
        inactive = request.args.get("reason", "") == Notice.INACTIVE  # the page's idle timer
        await sessions.revoke(current.id, EndReason.LOGOUT)
        await audit.record("logout", info(), current.user_id,
                           reason="inactivity" if inactive else "user")
        shown = Notice.INACTIVE if inactive else Notice.SIGNED_OUT
        response: Response = redirect(f"/login?reason={shown}")  # type: ignore[assignment]
        response.delete_cookie(cookie_name, path="/", secure=settings.cookie_secure,
                               httponly=True, samesite="Lax")
        response.headers["Clear-Site-Data"] = '"cache", "cookies", "storage"'
        return response

    @bp.get("/account/password")
    @signed_in
    @allowed_before_password_change
    @limited("pages")
    async def password_form() -> str:
        first = session().must_change_password
        return await render_template("password.html", first=first,
                                     next=_room_page(request.args.get("next", "")) if first else "",
                                     min_length=settings.password_min_length)

    @bp.post("/account/password")
    @signed_in
    @allowed_before_password_change
    @limited("login")
    async def change_password() -> Response | tuple[str, int]:
        current = session()
        first = current.must_change_password
        context: dict[str, object] = {"first": first, "next": "",
                                      "min_length": settings.password_min_length}
        try:
            form = await form_model(PasswordForm)
        except InputError as exc:
            return await render_template("password.html", error="Fill in every field.",
                                         fields=exc.fields, **context), 400
        room = _room_page(form.next) if first else ""
        context["next"] = room
        if form.new_password != form.confirm_password:
            return await render_template("password.html",
                                         error="The new passwords do not match.", **context), 400
        try:
            await accounts.change_password(
                current.user_id, form.current_password, form.new_password, info(),
                session_id=current.id, end_other_sessions=form.end_other_sessions is not None)
        except ServiceError as exc:
            if exc.code == "locked_signed_out":  # this session ended with the others
                ended: Response = redirect(f"/login?reason={Notice.LOCKED}")  # type: ignore[assignment]
                ended.delete_cookie(cookie_name, path="/", secure=settings.cookie_secure,
                                    httponly=True, samesite="Lax")
                return ended
            status = 403 if exc.kind == "forbidden" else 400
            return await render_template("password.html", error=exc.message,
                                         **context), status
        if first:  # a new member has nothing to do on the account page: into chat
            return redirect(room or WELCOME_PAGE)  # type: ignore[return-value]
        return redirect("/account?changed=1")  # type: ignore[return-value]

    @bp.get("/account")
    @signed_in
    @limited("pages")
    async def account() -> str:
        current = session()
        rows = await sessions.list_for_user(current.user_id)
        return await render_template("account.html", sessions=rows, current_id=current.id,
                                     changed=request.args.get("changed") == "1")

    @bp.post("/account/sessions/<id:session_id>/revoke")
    @signed_in
    @limited("pages")
    async def revoke_session(session_id: int) -> Response | tuple[str, int]:
        current = session()
        await form_model(EmptyForm)
        mine = {row.id for row in await sessions.list_for_user(current.user_id)}
        if session_id not in mine:
            return await render_template("error.html", status=404, code="not_found",
                                         message="No such session."), 404
        await sessions.revoke(session_id, EndReason.REVOKED_BY_USER)
        await audit.record("session_revoked", info(), current.user_id, session_id=session_id)
        if session_id == current.id:
            return redirect(f"/login?reason={Notice.ENDED}")  # type: ignore[return-value]
        return redirect("/account")  # type: ignore[return-value]

    return bp
