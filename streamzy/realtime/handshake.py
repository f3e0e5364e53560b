"""Connect-time authentication: a browser's session cookie (plus the page's CSRF token) or
a bot token in the Socket.IO ``auth`` object."""

from __future__ import annotations

from typing import Any

from streamzy.clock import Clock
from streamzy.guards.context import RequestInfo
from streamzy.guards.csrf import tokens_match
from streamzy.guards.sessions import SessionStore, cookie_from_headers
from streamzy.realtime.principal import Principal
from streamzy.services.bots import Bots
from streamzy.services.errors import as_service_error


class Refused(Exception):
    """A refused connect, with the stable code the client receives."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Handshake:
    def __init__(self, sessions: SessionStore, bots: Bots, clock: Clock,
                 cookie_name: str) -> None:
        self._sessions = sessions
        self._bots = bots
        self._clock = clock
        self._cookie_name = cookie_name

    async def authenticate(self, environ: dict[str, Any], auth: Any) -> Principal:
        """Who this connect speaks for, or Refused (an outage reads as ``unavailable``)."""
        info = RequestInfo.from_environ(environ)
        try:
            return await self._authenticate(environ, auth, info)
        except Refused:
            raise
        except Exception as exc:
            if as_service_error(exc) is None:
                raise
            raise Refused("unavailable", "The server cannot reach its database.") from None

    async def _authenticate(self, environ: dict[str, Any], auth: Any,
                            info: RequestInfo) -> Principal:
        token = auth.get("token") if isinstance(auth, dict) else None
        if token is not None:
            bot = await self._bots.resolve(token if isinstance(token, str) else None)
            if bot is None:
                raise Refused("invalid_token", "The bot token is not valid.")
            return Principal("bot", bot.user_id, bot.username, bot.display_name, bot.token_id,
                             info, self._clock.now())
        scope = environ.get("asgi.scope") or {}
        cookie = cookie_from_headers(scope.get("headers"), self._cookie_name)
        if not cookie:
            raise Refused("not_authenticated", "Sign in first.")
        resolution = await self._sessions.resolve(cookie)
        session = resolution.session
        if session is None:
            raise Refused("session_expired" if resolution.reason in ("idle", "absolute")
                          else "not_authenticated", "Your session is not valid. Sign in again.")
        if session.must_change_password:
            raise Refused("password_change_required", "Change your password first.")
        if session.must_enrol:
            raise Refused("second_factor_required", "Set up a second factor first.")
        if environ.get("HTTP_ORIGIN"):
            # A browser: besides the Origin check, it must show the page's CSRF token, so
            # a connection can only come from a page we served to this session.
            given = auth.get("csrf") if isinstance(auth, dict) else None
            if not tokens_match(session.csrf_token, given if isinstance(given, str) else None):
                raise Refused("csrf_failed", "Reload the page and try again.")
        return Principal("user", session.user_id, session.username, session.display_name,
                         session.id, info, session.last_seen_at)
