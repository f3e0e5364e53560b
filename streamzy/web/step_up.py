"""The step-up page, ``/account/confirm``: prove it is still you (password, a TOTP or
recovery code, or a passkey: passkey_step_up.html) before a dangerous action, then go back.

A proof is recorded on the session (``sessions.reauth_at``) and counts for
STREAMZY_STEP_UP_SECONDS; signing in counts as one. Wrong passwords and codes count toward
the account lockout like everywhere else, and the guess that locks the account ends its
sessions, so a stolen session cannot guess at this form.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints
from quart import Blueprint, Response, redirect, render_template, request

from streamzy.config import Settings
from streamzy.guards.audit import AuditLog
from streamzy.guards.sessions import EndReason, SessionStore
from streamzy.guards.validation import InputError, StrictModel
from streamzy.services.accounts import Accounts
from streamzy.services.errors import ServiceError
from streamzy.services.second_factors import SecondFactors
from streamzy.web.auth import _safe_next
from streamzy.web.current import info, session
from streamzy.web.parsing import form_model
from streamzy.web.policy import allowed_before_enrolment, limited, signed_in
from streamzy.web.sign_in_notices import Notice

WRONG_CODE = "That code is not right, or it was already used."
CODE_MESSAGES = {
    "locked": ("The account is locked after too many wrong passwords or codes. Wait a few "
               "minutes before trying again."),
    "malformed": "Enter the 6-digit code from your app, or one of your recovery codes.",
    "no_factor": "This account has no authenticator app or recovery codes: use the password.",
}


class ConfirmForm(StrictModel):
    # Exactly one of the two; taken exactly as typed, like every password.
    password: Annotated[str, StringConstraints(max_length=4096)] = ""
    code: Annotated[str, StringConstraints(max_length=64)] = ""
    next: Annotated[str, StringConstraints(max_length=512)] = ""


def blueprint(*, settings: Settings, accounts: Accounts, sessions: SessionStore,
              second_factors: SecondFactors, audit: AuditLog) -> Blueprint:
    bp = Blueprint("step_up", __name__)
    cookie_name = settings.session_cookie_name

    async def page(target: str, *, error: str = "", status: int = 200,
                   fields: dict[str, str] | None = None) -> tuple[str, int]:
        factors = await second_factors.status(session().user_id)
        return await render_template(
            "confirm.html", next=target, error=error, fields=fields,
            has_code=factors.totp or factors.recovery_codes_left > 0,
            minutes=max(1, settings.step_up_seconds // 60)), status

    def signed_out() -> Response:
        """The guess that locked the account ended this session with the others."""
        ended: Response = redirect(f"/login?reason={Notice.LOCKED}")  # type: ignore[assignment]
        ended.delete_cookie(cookie_name, path="/", secure=settings.cookie_secure,
                            httponly=True, samesite="Lax")
        return ended

    @bp.get("/account/confirm")
    @signed_in
    @allowed_before_enrolment  # adding a passkey during forced enrolment may need it
    @limited("pages")
    async def confirm_form() -> tuple[str, int]:
        return await page(_safe_next(request.args.get("next", "/")))

    @bp.post("/account/confirm")
    @signed_in
    @allowed_before_enrolment
    @limited("login", "second_factor")
    async def confirm() -> Response | tuple[str, int]:
        current = session()
        try:
            form = await form_model(ConfirmForm)
        except InputError as exc:
            return await page("/", error="Enter your password or a code.", status=400,
                              fields=exc.fields)
        target = _safe_next(form.next or "/")
        if bool(form.password) == bool(form.code.strip()):
            return await page(target, error="Enter your password, or a code, not both.",
                              status=400)
        if form.password:
            try:
                await accounts.confirm_password(current.user_id, form.password, info())
            except ServiceError as exc:
                if exc.code == "locked_signed_out":
                    return signed_out()
                return await page(target, error=exc.message,
                                  status=403 if exc.kind == "forbidden" else 400)
            method = "password"
        else:
            outcome = await second_factors.check_code(current.user_id, form.code.strip(),
                                                      info(), purpose="step_up")
            if not outcome.ok:
                await audit.record("step_up_failed", info(), current.user_id,
                                   method=outcome.method or "code", reason=outcome.reason)
                if outcome.reason in ("wrong_code", "locked") and await accounts.is_locked_now(
                        current.user_id):
                    # The account is locked (this code locked it, or it was): like a wrong
                    # password here, every session of it ends, this one included.
                    await sessions.revoke_user(current.user_id, EndReason.LOCKED)
                    return signed_out()
                return await page(target, error=CODE_MESSAGES.get(outcome.reason, WRONG_CODE),
                                  status=403 if outcome.reason == "locked" else 400)
            method = outcome.method
        await sessions.reauthenticated(current.id)
        await audit.record("step_up_passed", info(), current.user_id, method=method)
        return redirect(target, 303)  # type: ignore[return-value]

    return bp
