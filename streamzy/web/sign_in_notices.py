"""Why someone lands on the sign-in page: the notice codes and their words, defined once.

A code travels in ``/login?reason=``. The server picks it for its own redirects (sign out,
a revoked session, a cookie whose session expired). The browser picks it when chat learns
that the session ended (the socket's ``session_ended`` reason, or a refused handshake),
and when the inactivity timer signs out; signed-in pages carry ``client_table()`` as a
non-executed JSON block (base.html) for that, so the JavaScript keeps no copy.
"""

from __future__ import annotations

from enum import StrEnum

from streamzy.guards.sessions import EndReason


class Notice(StrEnum):
    SIGNED_OUT = "logged_out"
    INACTIVE = "inactive"  # the page's inactivity timer signed out (also /logout?reason=)
    IDLE = "idle"
    ABSOLUTE = "absolute"
    EXPIRED = "expired"
    DISABLED = "disabled"
    ENDED = "ended"  # anything else: signed out elsewhere, revoked, by an administrator
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - a notice code
    LOCKED = "locked"
    # The second-factor step: its time ran out (or it was already used), or wrong codes
    # locked the account.
    SECOND_FACTOR_EXPIRED = "second_factor_expired"
    SECOND_FACTOR_LOCKED = "second_factor_locked"
    SECOND_FACTOR_REQUIRED = "second_factor_required"
    SECOND_FACTOR_RESET = "second_factor_reset"


TEXT: dict[str, str] = {
    Notice.SIGNED_OUT: "You signed out.",
    Notice.IDLE: "You were signed out after a period of inactivity.",
    Notice.INACTIVE: "You were signed out after a period of inactivity.",
    Notice.ABSOLUTE: "Your session reached its maximum age. Please sign in again.",
    Notice.EXPIRED: "Your session expired. Please sign in again.",
    Notice.DISABLED: "Your session ended.",
    Notice.ENDED: "Your session ended (signed out elsewhere, or by an administrator).",
    Notice.PASSWORD_CHANGED: "Your password changed. Please sign in again.",
    Notice.LOCKED: ("You were signed out after too many wrong passwords, and the account is "
                    "locked for a while."),
    Notice.SECOND_FACTOR_EXPIRED: ("The second step of signing in ran out of time. Sign in "
                                   "again with your password."),
    Notice.SECOND_FACTOR_LOCKED: ("Too many wrong codes: the account is locked for a while. "
                                  "Sign in again later."),
    Notice.SECOND_FACTOR_REQUIRED: ("Your administrators now require a second factor. Sign "
                                    "in again to set one up."),
    Notice.SECOND_FACTOR_RESET: ("An administrator removed your second factor. Sign in again "
                                 "(and set up a new one)."),
}

# A session's end reason, or the socket handshake's refusal code -> the notice to show.
FOR_ENDING: dict[str, Notice] = {
    EndReason.IDLE: Notice.IDLE,
    EndReason.EXPIRED: Notice.IDLE,  # housekeeping ends sessions that went idle (or too old)
    EndReason.ABSOLUTE: Notice.ABSOLUTE,
    EndReason.DISABLED: Notice.DISABLED,
    EndReason.PASSWORD_CHANGED: Notice.PASSWORD_CHANGED,
    EndReason.LOCKED: Notice.LOCKED,
    EndReason.SECOND_FACTOR_REQUIRED: Notice.SECOND_FACTOR_REQUIRED,
    EndReason.SECOND_FACTOR_RESET: Notice.SECOND_FACTOR_RESET,
    "session_expired": Notice.IDLE,  # the handshake refused an idle or too-old session
}


def for_ending(reason: str) -> Notice:
    """The notice for a session that ended for ``reason``."""
    return FOR_ENDING.get(reason, Notice.ENDED)


def text_for(code: str) -> str | None:
    """The words for a notice code from the URL; None for anything we did not issue."""
    return TEXT.get(code)


def client_table() -> dict[str, object]:
    """What signed-in pages hand to app.js (the ending table, its default, the idle code)."""
    return {"forEnding": {str(k): str(v) for k, v in FOR_ENDING.items()},
            "otherwise": str(Notice.ENDED), "inactive": str(Notice.INACTIVE)}
