"""Route policy: every route declares who may call it, its CSRF rule and its rate limits.

The hooks enforce these attributes, and a test walks every route and fails if any route
lacks one, so a new route cannot ship unguarded by accident.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

AUTH_ATTR = "_streamzy_auth"
LIMITS_ATTR = "_streamzy_limits"
CSRF_EXEMPT_ATTR = "_streamzy_csrf_exempt"
PASSWORD_CHANGE_ATTR = "_streamzy_during_password_change"  # noqa: S105 - an attribute name
ENROLMENT_ATTR = "_streamzy_during_enrolment"
STEP_UP_ATTR = "_streamzy_step_up"

Auth = Literal["public", "user", "admin", "bot", "metrics"]
F = Callable[..., Any]


def _set(attr: str, value: Any) -> Callable[[F], F]:
    def decorate(func: F) -> F:
        setattr(func, attr, value)
        return func
    return decorate


def public(func: F) -> F:
    """Anyone may call this route."""
    return _set(AUTH_ATTR, "public")(func)


def signed_in(func: F) -> F:
    """A signed-in person may call this route."""
    return _set(AUTH_ATTR, "user")(func)


def admin_only(func: F) -> F:
    return _set(AUTH_ATTR, "admin")(func)


def bot_token(func: F) -> F:
    """Called with a Bearer bot token instead of a browser session."""
    return _set(AUTH_ATTR, "bot")(func)


def metrics_token(func: F) -> F:
    """Only with ``Authorization: Bearer <STREAMZY_METRICS_TOKEN>``; anything else is a 404
    (as if the route did not exist), and so is every request while no token is set."""
    return _set(AUTH_ATTR, "metrics")(func)


def limited(*names: str) -> Callable[[F], F]:
    """Rate limits by setting name (``login`` -> ``STREAMZY_RATE_LOGIN``)."""
    return _set(LIMITS_ATTR, names)


def csrf_exempt(reason: str) -> Callable[[F], F]:
    """Only for routes that no browser cookie can authorise (bearer-token API)."""
    return _set(CSRF_EXEMPT_ATTR, reason)


def allowed_before_password_change(func: F) -> F:
    """Reachable while a first-login password change is still owed."""
    return _set(PASSWORD_CHANGE_ATTR, True)(func)


def allowed_before_enrolment(func: F) -> F:
    """Reachable while the second-factor policy still wants this account to enrol."""
    return _set(ENROLMENT_ATTR, True)(func)


def step_up(func: F) -> F:
    """A dangerous action: the session must have proved its owner (password, code or
    passkey) within STREAMZY_STEP_UP_SECONDS, else the step-up page comes first."""
    return _set(STEP_UP_ATTR, True)(func)


def auth_rule(view: Any) -> Auth | None:
    """Who may call ``view``; None when it declares nothing (the hooks then refuse it)."""
    rule: Auth | None = getattr(view, AUTH_ATTR, None)
    return rule


def limits_of(view: Any) -> tuple[str, ...]:
    """The rate-limit names ``view`` spends."""
    names: tuple[str, ...] = getattr(view, LIMITS_ATTR, ())
    return names


def csrf_exemption(view: Any) -> str | None:
    """Why ``view`` needs no CSRF token, or None (the usual case)."""
    reason: str | None = getattr(view, CSRF_EXEMPT_ATTR, None)
    return reason


def reachable_before_password_change(view: Any) -> bool:
    return bool(getattr(view, PASSWORD_CHANGE_ATTR, False))


def reachable_before_enrolment(view: Any) -> bool:
    return bool(getattr(view, ENROLMENT_ATTR, False))


def wants_step_up(view: Any) -> bool:
    return bool(getattr(view, STEP_UP_ATTR, False))


def policy_of(view: Any) -> dict[str, Any]:
    return {"auth": auth_rule(view), "limits": limits_of(view),
            "csrf_exempt": csrf_exemption(view), "step_up": wants_step_up(view)}
