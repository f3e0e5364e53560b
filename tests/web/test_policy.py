"""Policy as a test: every route declares its auth rule, rate limits and CSRF rule."""

from __future__ import annotations

from typing import Any

from werkzeug.routing import Rule

from streamzy.config import Settings
from streamzy.web.policy import policy_of
from tests.conftest import LiveServer

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
ACTION_WORDS = ("logout", "approve", "reject", "revoke", "disable", "enable", "unlock",
                "reset")


def _routes(server: LiveServer) -> list[tuple[Rule, Any]]:
    quart = server.app.quart
    routes = [(rule, quart.view_functions[rule.endpoint]) for rule in quart.url_map.iter_rules()]
    assert len(routes) >= 10, "the app should expose its blueprints"
    return routes


async def test_every_route_has_an_auth_rule(server: LiveServer) -> None:
    missing = [rule.rule for rule, view in _routes(server)
               if policy_of(view)["auth"] not in ("public", "user", "admin", "bot",
                                                  "metrics")]
    assert missing == []


async def test_every_route_has_a_known_rate_limit(server: LiveServer) -> None:
    fields = set(Settings.model_fields)
    problems = []
    for rule, view in _routes(server):
        limits = policy_of(view)["limits"]
        if not limits:
            problems.append(f"{rule.rule}: no rate limit")
        problems += [f"{rule.rule}: unknown limit {name!r}" for name in limits
                     if f"rate_{name}" not in fields]
    assert problems == []


async def test_every_state_changing_route_is_csrf_protected(server: LiveServer) -> None:
    problems = []
    for rule, view in _routes(server):
        if not (rule.methods or set()) & UNSAFE:
            continue
        policy = policy_of(view)
        if policy["csrf_exempt"] is None:
            continue
        if policy["auth"] != "bot" or not str(policy["csrf_exempt"]).strip():
            problems.append(rule.rule)
    assert problems == []


async def test_actions_are_never_reachable_by_get(server: LiveServer) -> None:
    actions = []
    for rule, _view in _routes(server):
        name = f"{rule.endpoint} {rule.rule}".lower()
        if any(word in name for word in ACTION_WORDS):
            actions.append(rule)
            assert not (rule.methods or set()) & {"GET", "HEAD"}, rule.rule
    endpoints = {rule.endpoint for rule in actions}
    assert {"auth.logout", "admin.approve", "admin.reject", "auth.revoke_session"} <= endpoints

