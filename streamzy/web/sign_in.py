"""The last step of every way in (password, password + second factor, passkey): a new
session, its cookie, and the half-signed-in challenge cookie cleared."""

from __future__ import annotations

from quart import Response, g, jsonify, redirect

from streamzy.config import Settings
from streamzy.guards.sessions import EndReason, SessionStore
from streamzy.web.current import info


def clear_challenge_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(settings.challenge_cookie_name, path="/",
                           secure=settings.cookie_secure, httponly=True, samesite="Strict")


def set_challenge_cookie(response: Response, settings: Settings, token: str) -> None:
    """The second-factor step's cookie: its own name, short-lived, never a session."""
    response.set_cookie(settings.challenge_cookie_name, token, httponly=True,
                        samesite="Strict", secure=settings.cookie_secure, path="/",
                        max_age=settings.second_factor_seconds)


async def start_session(settings: Settings, sessions: SessionStore, user_id: int,
                        method: str, target: str, *, as_json: bool = False) -> Response:
    """Issue a session for ``user_id`` and send the browser to ``target`` (a safe,
    same-site path chosen by the caller). ``as_json`` answers ``{"next": target}`` for the
    passkey script instead of a redirect."""
    old = g.get("session")
    if old is not None:  # a new token at every sign-in: no fixation, no reuse
        await sessions.revoke(old.id, EndReason.REPLACED)
    token, _ = await sessions.issue(user_id, info(), method)
    response: Response = (jsonify({"next": target}) if as_json
                          else redirect(target))  # type: ignore[assignment]
    response.set_cookie(settings.session_cookie_name, token, httponly=True, samesite="Lax",
                        secure=settings.cookie_secure, path="/",
                        max_age=settings.session_absolute_seconds)
    clear_challenge_cookie(response, settings)
    return response
