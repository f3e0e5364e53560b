"""Route rate limits: each name a route declares with ``@limited`` is counted per client.

Why this is not quart-rate-limiter's ``RateLimiter``: its public surface is a key function,
``RateLimit(count, period)`` markers, ``rate_exempt`` and a ``get``/``set`` store, and with
those alone it cannot keep what our limits promise:

* time: it reads ``datetime.now(UTC)`` itself, so neither the injectable clock nor the
  tests' ManualClock can drive it (tests would have to sleep through five-minute windows);
* atomicity: it reads a stored TAT, decides, and writes it back in separate awaits, so
  concurrent requests (or several processes on one Redis) all pass on the same old value;
  our GCRA is one step (one Lua script on Redis);
* one budget per name, shared with the socket edge: its keys are per endpoint and per
  (count, period); ours are per limit name ("login" covers POST /login and POST
  /account/password) and go through the same limiter and store as Socket.IO events;
* fail closed: a store error surfaces as an exception, so it cannot refuse "login" and
  "apply" with a 503 while the other limits fall back to per-process counting;
* audit: its ``RateLimitExceeded`` says nothing about which limit or key refused.

So the counting stays in ``streamzy.guards.ratelimit`` and this is a plain Quart
``before_request`` hook. From the library we use the public ``RateLimitExceeded`` (a 429
carrying Retry-After), and we override nothing of it.
"""

from __future__ import annotations

import math

from quart import Quart, Response, g, request
from quart_rate_limiter import RateLimitExceeded
from werkzeug.exceptions import ServiceUnavailable

from streamzy.config import Rate, Settings
from streamzy.guards.audit import AuditLog
from streamzy.guards.ratelimit import FAIL_CLOSED, Decision, RateLimiter
from streamzy.web.current import info
from streamzy.web.policy import limits_of

API_PREFIX = "/api/"
API_LIMIT = "api"


def rate_headers(decision: Decision, rate: Rate) -> dict[str, str]:
    """The IETF draft's RateLimit-* fields for one GCRA decision.

    Remaining: how many more requests fit now; Reset: seconds until the whole quota is back.
    """
    interval = rate.period / rate.count
    fits = math.floor((rate.period - decision.backlog) / interval + 1e-6)
    return {"RateLimit-Limit": str(rate.count),
            "RateLimit-Remaining": str(max(0, min(rate.count, fits))),
            "RateLimit-Reset": str(max(0, math.ceil(decision.backlog - 1e-6)))}


def client_key(name: str) -> str:
    """Whose budget a request spends: a bot's token on the API, else the client address.

    The address is the ASGI client after ProxyFix (configured trusted hops), never an
    X-Forwarded-For value the client picked.
    """
    bot = g.get("bot")
    if name == "api" and bot is not None:
        return f"bot:{bot.token_id}"
    client = request.scope.get("client") or ("unknown", 0)
    return f"ip:{client[0]}"


def install(app: Quart, *, limiter: RateLimiter, settings: Settings, audit: AuditLog) -> None:
    """Refuse a request over any of its route's limits (429, or 503 when failing closed)."""

    async def enforce_limits() -> None:
        view = app.view_functions.get(request.endpoint or "")
        names = limits_of(view)
        if not names and request.path.startswith(API_PREFIX):
            names = (API_LIMIT,)  # an unknown API path or method spends the API budget too
        for name in names:
            key = f"{name}:{client_key(name)}"
            rate = settings.rate(name)
            decision = await limiter.hit(key, rate, fail_closed=name in FAIL_CLOSED)
            if name == API_LIMIT and not decision.unavailable:
                g.rate_limit_headers = rate_headers(decision, rate)
            if decision.unavailable:
                await audit.record_throttled("rate-store-down", "rate_limit_unavailable",
                                             info(), None, limit=name, path=request.path)
                raise ServiceUnavailable(retry_after=math.ceil(decision.retry_after))
            if not decision.allowed:
                session = g.get("session")
                await audit.record_throttled(key, "rate_limited", info(),
                                             session.user_id if session else None,
                                             limit=name, path=request.path)
                raise RateLimitExceeded(max(1, math.ceil(decision.retry_after)))

    async def send_rate_headers(response: Response) -> Response:
        """Every API answer (429 and errors included) says how much budget is left."""
        for field, value in (g.get("rate_limit_headers") or {}).items():
            response.headers[field] = value
        return response

    app.before_request(enforce_limits)
    app.after_request(send_rate_headers)
