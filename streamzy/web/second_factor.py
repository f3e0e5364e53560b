"""The second factor by code, both halves: the account pages that set up a TOTP app and
its recovery codes, and the sign-in step a password-right, factor-owed browser is sent to.

The sign-in step is reached only with the challenge cookie (web/sign_in.py): no session
exists until a code passes, so every other page, API call and socket refuses the browser.
"""

from __future__ import annotations

import asyncio
import io

import segno
from quart import Blueprint, Response, redirect, render_template, request

from streamzy.config import Settings
from streamzy.guards.audit import AuditLog
from streamzy.guards.sessions import SessionStore
from streamzy.guards.validation import InputError
from streamzy.services.accounts import Accounts
from streamzy.services.errors import ServiceError
from streamzy.services.second_factors import SecondFactors
from streamzy.services.sign_in_challenges import SECOND_FACTOR, SignInChallenges
from streamzy.web.auth import _safe_next
from streamzy.web.current import info, session
from streamzy.web.forms import CodeForm, DisableTotpForm, EmptyForm
from streamzy.web.parsing import form_model
from streamzy.web.policy import allowed_before_enrolment, limited, public, signed_in, step_up
from streamzy.web.sign_in import clear_challenge_cookie, start_session
from streamzy.web.sign_in_notices import Notice

PAGE = "/account/second-factor"
WRONG = {
    "wrong_code": "That code is not right. Type the code the app shows now.",
    "replayed": "That code was already used. Wait for the next one.",
    "malformed": "Type the 6-digit code from the app, or one of your recovery codes.",
}


def _no_store(body: str, status: int = 200) -> Response:
    """Pages that show a secret or a code: never kept in any cache."""
    response = Response(body, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


def _qr_svg(uri: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="svg", scale=5, border=4, xmldecl=False,
                                    title="QR code for your authenticator app")
    return buffer.getvalue()


def _to_login(settings: Settings, notice: Notice) -> Response:
    response: Response = redirect(f"/login?reason={notice}")  # type: ignore[assignment]
    clear_challenge_cookie(response, settings)
    return response


def blueprint(*, settings: Settings, accounts: Accounts, sessions: SessionStore,
              second_factors: SecondFactors, challenges: SignInChallenges,
              audit: AuditLog) -> Blueprint:
    bp = Blueprint("second_factor", __name__)

    async def overview_page(error: str = "", status: int = 200) -> Response:
        current = session()
        state = await second_factors.status(current.user_id)
        pending = (await second_factors.pending_totp(current.user_id, current.username)
                   if state.totp_pending else None)
        body = await render_template(
            "second_factor.html", state=state, pending=pending, error=error,
            required=request.args.get("required") == "1" or current.must_enrol,
            removed=request.args.get("removed") == "1")
        return _no_store(body, status)

    # -- the account pages ------------------------------------------------------------------

    @bp.get(PAGE)
    @signed_in
    @allowed_before_enrolment
    @limited("pages")
    async def overview() -> Response:
        return await overview_page()

    @bp.post(PAGE + "/totp/begin")
    @signed_in
    @allowed_before_enrolment
    @step_up  # a stolen session must not plant its own authenticator app
    @limited("pages")
    async def totp_begin() -> Response:
        current = session()
        await form_model(EmptyForm)
        try:
            await second_factors.begin_totp(current.user_id, current.username, info())
        except ServiceError as exc:
            return await overview_page(exc.message, 409)
        return redirect(PAGE + "#set-up", 303)  # type: ignore[return-value]

    @bp.get(PAGE + "/totp/qr.svg")
    @signed_in
    @allowed_before_enrolment
    @limited("pages")
    async def totp_qr() -> Response:
        current = session()
        pending = await second_factors.pending_totp(current.user_id, current.username)
        if pending is None:
            return Response("", status=404, mimetype="text/plain")
        svg = await asyncio.to_thread(_qr_svg, pending.uri)
        response = Response(svg, mimetype="image/svg+xml")
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @bp.post(PAGE + "/totp/confirm")
    @signed_in
    @allowed_before_enrolment
    @step_up  # a stolen session must not plant its own authenticator app
    @limited("second_factor")
    async def totp_confirm() -> Response:
        current = session()
        try:
            form = await form_model(CodeForm)
            codes = await second_factors.confirm_totp(current.user_id, form.code, info())
        except InputError:
            return await overview_page(WRONG["malformed"], 400)
        except ServiceError as exc:
            return await overview_page(exc.message, 409 if exc.kind == "conflict" else 400)
        return _no_store(await render_template("recovery_codes.html", codes=codes,
                                               enrolled=True))

    @bp.post(PAGE + "/totp/disable")
    @signed_in
    @allowed_before_enrolment
    @limited("second_factor")
    async def totp_disable() -> Response:
        current = session()
        try:
            form = await form_model(DisableTotpForm)
            await second_factors.disable_totp(current.user_id, form.password, form.code,
                                              info())
        except InputError:
            return await overview_page("Type your password and a code.", 400)
        except ServiceError as exc:
            if exc.code == "locked" and not await sessions.list_for_user(current.user_id):
                return _to_login(settings, Notice.LOCKED)  # the lock ended this session
            return await overview_page(exc.message, 403 if exc.kind == "forbidden" else 400)
        return redirect(PAGE + "?removed=1", 303)  # type: ignore[return-value]

    @bp.post(PAGE + "/recovery-codes")
    @signed_in
    @allowed_before_enrolment
    @limited("second_factor")
    async def recovery_codes_regenerate() -> Response:
        current = session()
        try:
            form = await form_model(CodeForm)
            codes = await second_factors.regenerate_recovery_codes(current.user_id, form.code,
                                                                   info())
        except InputError:
            return await overview_page(WRONG["malformed"], 400)
        except ServiceError as exc:
            if exc.code == "locked" and not await sessions.list_for_user(current.user_id):
                return _to_login(settings, Notice.LOCKED)
            return await overview_page(exc.message, 403 if exc.kind == "forbidden" else 400)
        return _no_store(await render_template("recovery_codes.html", codes=codes,
                                               enrolled=False))

    # -- the sign-in step -------------------------------------------------------------------

    def challenge_token() -> str | None:
        return request.cookies.get(settings.challenge_cookie_name)

    async def step_page(target: str, error: str = "", status: int = 200) -> Response:
        return _no_store(await render_template("login_second_factor.html", next=target,
                                               error=error), status)

    @bp.get("/login/second-factor")
    @public
    @limited("pages")
    async def login_second_factor_form() -> Response:
        if await challenges.find(challenge_token(), SECOND_FACTOR) is None:
            return _to_login(settings, Notice.SECOND_FACTOR_EXPIRED)
        return await step_page(_safe_next(request.args.get("next", "/")))

    @bp.post("/login/second-factor")
    @public
    @limited("second_factor")
    async def login_second_factor() -> Response:
        challenge = await challenges.find(challenge_token(), SECOND_FACTOR)
        if challenge is None or challenge.user_id is None:
            return _to_login(settings, Notice.SECOND_FACTOR_EXPIRED)
        try:
            form = await form_model(CodeForm)
        except InputError:
            return await step_page("/", WRONG["malformed"], 400)
        target = _safe_next(form.next or "/")
        outcome = await second_factors.check_code(challenge.user_id, form.code, info(),
                                                  purpose="sign_in")
        if outcome.reason in ("locked", "no_factor"):
            await challenges.finish(challenge.id)
            return _to_login(settings, Notice.SECOND_FACTOR_LOCKED if outcome.reason ==
                             "locked" else Notice.SECOND_FACTOR_EXPIRED)
        if not outcome.ok:
            await challenges.attempt(challenge.id)
            return await step_page(target, WRONG.get(outcome.reason, WRONG["wrong_code"]),
                                   401)
        # Two answers racing on one challenge: only the one that deletes it goes on.
        if not await challenges.finish(challenge.id):
            return _to_login(settings, Notice.SECOND_FACTOR_EXPIRED)
        user = await accounts.get(challenge.user_id)
        if user is None or not user.is_active:
            return _to_login(settings, Notice.SECOND_FACTOR_EXPIRED)
        await audit.record("login_succeeded", info(), user.id, method=outcome.method)
        return await start_session(settings, sessions, user.id, outcome.method, target)

    return bp

