"""Passkeys on the web edge: the account's list, and the JSON ceremonies static/passkeys.js
drives (each an ``options`` call, then the browser's answer).

Every ceremony keeps its challenge in a sign-in challenge row known by the challenge cookie
(never a session): enrolment and step-up bind it to the session that asked, the sign-in to
nobody until a credential names its account, the second step to the half-signed-in row the
password left. Errors are JSON with a stable code whatever the client sent (never a 500);
the reason a passkey answer was refused goes to the audit, not to the client.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field
from quart import Blueprint, Response, g, jsonify, redirect, render_template, request

from streamzy.config import Settings
from streamzy.guards.sessions import EndReason, SessionStore
from streamzy.guards.validation import InputError, StrictModel, parse
from streamzy.services.errors import ServiceError
from streamzy.services.passkey_checks import RelyingParty
from streamzy.services.passkeys import Ceremony, Outcome, Passkey, Passkeys
from streamzy.services.sign_in_challenges import SECOND_FACTOR, SignInChallenges
from streamzy.web.access import FIRST_SIGN_IN_PAGE
from streamzy.web.auth import _safe_next as safe_next
from streamzy.web.current import info, session
from streamzy.web.forms import EmptyForm
from streamzy.web.parsing import form_model
from streamzy.web.policy import allowed_before_enrolment, limited, public, signed_in, step_up
from streamzy.web.sign_in import clear_challenge_cookie, set_challenge_cookie, start_session

OVERVIEW = "/account/passkeys"
# What one answer may weigh: a passkey answer is about 1-2 KB of base64url.
MAX_ANSWER_BYTES = 16 * 1024
REFUSED = ("The passkey was not accepted, or the account is temporarily locked. "
           "Try again, or sign in with your password.")


class NewPasskey(StrictModel):
    credential: dict[str, Any]
    name: str = Field(default="", max_length=200)


class PasskeyAnswer(StrictModel):
    credential: dict[str, Any]
    next: str = Field(default="/", max_length=2000)


def _json_error(status: int, code: str, message: str) -> Response:
    """Always JSON here (the script reads ``code``), whatever the Accept header said."""
    response = jsonify({"ok": False, "code": code, "message": message})
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def _service_error(error: ServiceError) -> Response:
    status = {"not_found": 404, "conflict": 409, "forbidden": 403}.get(error.kind, 400)
    return _json_error(status, error.code, error.message)


async def _body[M: StrictModel](model: type[M]) -> M | Response:
    """The JSON body as ``model``, or the 4xx answer to send instead."""
    if request.mimetype != "application/json":
        return _json_error(415, "unsupported_media_type", "Send JSON.")
    if (request.content_length or 0) > MAX_ANSWER_BYTES:
        return _json_error(413, "too_large", "The request is too large.")
    raw = await request.get_data(cache=False)
    if len(raw) > MAX_ANSWER_BYTES:
        return _json_error(413, "too_large", "The request is too large.")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nesting is the sender's choice
        return _json_error(400, "invalid_json", "The body is not valid JSON.")
    try:
        return parse(model, data)
    except InputError as exc:
        return _json_error(400, exc.code, exc.message)


def _options(ceremony: Ceremony, settings: Settings) -> Response:
    response = Response(ceremony.options, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    if ceremony.token is not None:
        set_challenge_cookie(response, settings, ceremony.token)
    return response


def _passkey_json(passkey: Passkey) -> dict[str, Any]:
    return {"id": passkey.id, "name": passkey.name,
            "created_at": passkey.created_at.isoformat()}


def blueprint(*, settings: Settings, passkeys: Passkeys, sessions: SessionStore,
              challenges: SignInChallenges) -> Blueprint:
    bp = Blueprint("passkeys", __name__)

    def relying_party() -> RelyingParty:
        """Configured RP id and origin, else this request's host and origin (after
        ProxyFix: the scheme and host the trusted proxy reports)."""
        own_origin = f"{request.scheme}://{request.host}"
        try:
            host = urlsplit(own_origin).hostname or ""
        except ValueError:  # a malformed Host header ("[bad")
            host = ""
        rp_id = settings.webauthn_rp_id or host
        if not rp_id:
            raise InputError("bad_host", message="This address cannot use passkeys.")
        return RelyingParty(rp_id, settings.webauthn_rp_name,
                            settings.webauthn_origin or own_origin)

    def challenge_token() -> str | None:
        return request.cookies.get(settings.challenge_cookie_name)

    @bp.app_template_global("current_passkeys")
    async def current_passkeys() -> list[Passkey]:
        """The signed-in account's passkeys, for the partials (loaded only where shown)."""
        current = g.get("session")
        return [] if current is None else await passkeys.list_for_user(current.user_id)

    @bp.app_template_global("second_step_passkeys")
    async def second_step_passkeys() -> int:
        """How many passkeys the half-signed-in account has (0: hide the button)."""
        row = await challenges.find(challenge_token(), SECOND_FACTOR)
        if row is None or row.user_id is None:
            return 0
        return len(await passkeys.list_for_user(row.user_id))

    # -- the account's passkeys ----------------------------------------------------------
    @bp.get(OVERVIEW)
    @signed_in
    @allowed_before_enrolment
    @limited("pages")
    async def overview() -> str:
        return await render_template("passkeys.html",
                                     removed=request.args.get("removed") == "1",
                                     added=request.args.get("added") == "1")

    @bp.post(OVERVIEW + "/options")
    @signed_in
    @allowed_before_enrolment
    @step_up  # a stolen session must not be able to plant a passkey that signs in later
    @limited("second_factor")
    async def registration_options() -> Response:
        current = session()
        try:
            ceremony = await passkeys.start_registration(current.user_id, current.id,
                                                         relying_party(), info())
        except ServiceError as exc:
            return _service_error(exc)
        return _options(ceremony, settings)

    @bp.post(OVERVIEW + "/register")
    @signed_in
    @allowed_before_enrolment
    @step_up
    @limited("second_factor")
    async def register() -> Response:
        body = await _body(NewPasskey)
        if isinstance(body, Response):
            return body
        current = session()
        try:
            passkey = await passkeys.finish_registration(
                challenge_token(), current.user_id, current.id, body.credential, body.name,
                relying_party(), info())
        except ServiceError as exc:
            response = _service_error(exc)
        else:
            response = jsonify({"ok": True, "passkey": _passkey_json(passkey),
                                "next": OVERVIEW + "?added=1"})
        clear_challenge_cookie(response, settings)
        return response

    @bp.post(OVERVIEW + "/<id:passkey_id>/remove")
    @signed_in
    @step_up  # removing a factor is a dangerous change: a recent proof, by any factor
    @limited("second_factor")
    async def remove(passkey_id: int) -> Response:
        await form_model(EmptyForm)
        current = session()
        await passkeys.remove(current.user_id, passkey_id, info())  # NotFound -> 404
        return redirect(OVERVIEW + "?removed=1")  # type: ignore[return-value]

    # -- signing in with a passkey instead of a password -----------------------------------
    @bp.post("/login/passkey/options")
    @public
    @limited("second_factor")
    async def sign_in_options() -> Response:
        return _options(await passkeys.start_sign_in(relying_party(), info()), settings)

    @bp.post("/login/passkey/verify")
    @public
    @limited("second_factor")
    async def sign_in() -> Response:
        body = await _body(PasskeyAnswer)
        if isinstance(body, Response):
            return body
        outcome = await passkeys.finish_sign_in(challenge_token(), body.credential,
                                                relying_party(), info())
        return await _signed_in(outcome, body.next)

    # -- the second step after the password ---------------------------------------------
    @bp.post("/login/second-factor/passkey/options")
    @public
    @limited("second_factor")
    async def second_factor_options() -> Response:
        try:
            ceremony = await passkeys.start_second_factor(challenge_token(), relying_party())
        except ServiceError as exc:
            return _service_error(exc)
        return _options(ceremony, settings)

    @bp.post("/login/second-factor/passkey/verify")
    @public
    @limited("second_factor")
    async def second_factor() -> Response:
        body = await _body(PasskeyAnswer)
        if isinstance(body, Response):
            return body
        outcome = await passkeys.finish_second_factor(challenge_token(), body.credential,
                                                      relying_party(), info())
        return await _signed_in(outcome, body.next)

    async def _signed_in(outcome: Outcome, next_page: str) -> Response:
        if not outcome.ok or outcome.user_id is None:
            status = 403 if outcome.reason == "no_challenge" else 401
            code = "no_challenge" if outcome.reason == "no_challenge" else "passkey_refused"
            message = ("This sign-in expired. Start again." if status == 403 else REFUSED)
            response = _json_error(status, code, message)
            if outcome.locked:
                clear_challenge_cookie(response, settings)
            return response
        target = safe_next(next_page)
        if outcome.must_change_password:  # a passkey does not waive the owed password change
            target = FIRST_SIGN_IN_PAGE
        return await start_session(settings, sessions, outcome.user_id, "passkey", target,
                                   as_json=True)

    # -- step-up re-authentication -----------------------------------------------------
    @bp.post("/account/confirm/passkey/options")
    @signed_in
    @limited("second_factor")
    async def step_up_options() -> Response:
        current = session()
        try:
            ceremony = await passkeys.start_step_up(current.user_id, current.id,
                                                    relying_party(), info())
        except ServiceError as exc:
            return _service_error(exc)
        return _options(ceremony, settings)

    @bp.post("/account/confirm/passkey/verify")
    @signed_in
    @limited("second_factor")
    async def step_up_answer() -> Response:
        body = await _body(PasskeyAnswer)
        if isinstance(body, Response):
            return body
        current = session()
        outcome = await passkeys.finish_step_up(challenge_token(), current.user_id, current.id,
                                                body.credential, relying_party(), info())
        if outcome.ok:
            await sessions.reauthenticated(current.id)
            response = jsonify({"ok": True, "next": safe_next(body.next)})
        elif outcome.locked:
            # The answer that locked the account ends its sessions, this one included, as
            # a wrong password or code on the confirm page does.
            await sessions.revoke_user(current.user_id, EndReason.LOCKED)
            response = _json_error(401, "locked_signed_out", REFUSED)
            response.delete_cookie(settings.session_cookie_name, path="/",
                                   secure=settings.cookie_secure, httponly=True,
                                   samesite="Lax")
        else:
            response = _json_error(401, "passkey_refused", REFUSED)
        clear_challenge_cookie(response, settings)
        return response

    return bp

