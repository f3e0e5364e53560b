"""Policy as a test: every route declares its auth rule, rate limits and CSRF rule."""

from __future__ import annotations

from typing import Any

import httpx
from werkzeug.routing import Rule

from streamzy.config import Settings
from streamzy.web.policy import policy_of
from tests.conftest import TEST_PASSWORD, LiveServer

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



# -- step-up: every dangerous action demands a fresh proof of identity ----------------------
# (method, path, form fields): {bob}, {room} are filled in. Erasing and deleting carry a
# wrong confirmation, so once the step-up passes they stop at the form (400), harmlessly.
STEP_UP_TABLE: list[tuple[str, str, dict[str, str]]] = [
    ("POST", "/admin/users/{bob}", {"action": "grant_admin"}),
    ("POST", "/admin/users/{bob}", {"action": "revoke_admin"}),
    ("POST", "/admin/users/{bob}", {"action": "disable"}),
    ("POST", "/admin/users/{bob}", {"action": "reset_password"}),
    ("POST", "/admin/users/{bob}", {"action": "reset_second_factor"}),
    ("POST", "/admin/bots", {"name": "deploy-bot", "display_name": "Deploy"}),
    ("POST", "/account/export", {}),
    ("POST", "/admin/rooms/{room}/export", {}),
    ("GET", "/admin/audit?format=csv", {}),
    ("GET", "/admin/audit?format=json", {}),
    ("GET", "/admin/users/{bob}/erase", {}),
    ("POST", "/admin/users/{bob}/erase", {"confirm": "not-bob"}),
    ("GET", "/admin/rooms/{room}/delete", {}),
    ("POST", "/admin/rooms/{room}/delete", {"confirm": "not-the-room"}),
    ("POST", "/admin/security/policy", {"policy": "off"}),
    ("POST", "/admin/keys/rewrap", {}),
]
STEP_UP_ENDPOINTS = {
    "admin_chat.create_bot", "exports.export_mine", "exports.export_room",
    "data_lifecycle.confirm_erase", "data_lifecycle.erase",
    "data_lifecycle.confirm_delete_room", "data_lifecycle.delete_room",
    "admin_security.set_policy", "admin_security.rewrap_keys",
    # A passkey signs in on its own: a stolen session must not plant or remove one.
    "passkeys.registration_options", "passkeys.register", "passkeys.remove",
    "second_factor.totp_begin", "second_factor.totp_confirm",  # an app the same way
}


async def test_the_step_up_list_is_what_security_md_says(server: LiveServer) -> None:
    from pathlib import Path

    from streamzy.web.admin import STEP_UP_ACTIONS

    marked = {rule.endpoint for rule, view in _routes(server) if policy_of(view)["step_up"]}
    assert marked == STEP_UP_ENDPOINTS
    # One route, several actions: the view asks for step-up for these (enable, unlock: no).
    assert STEP_UP_ACTIONS == {"disable", "grant_admin", "revoke_admin", "reset_password",
                               "reset_second_factor"}
    security = (Path(__file__).resolve().parents[2] / "SECURITY.md").read_text("utf-8")
    section = security.split("## Step-up re-authentication", 1)[1].split("\n## ", 1)[0]
    for _method, path, data in STEP_UP_TABLE:
        documented = path.replace("{bob}", "<id>").replace("{room}", "<id>")
        assert documented.split("?")[0] in section, path
        if "action" in data:
            assert data["action"] in section, data


async def test_every_dangerous_action_demands_a_fresh_step_up(server: LiveServer) -> None:
    from urllib.parse import quote

    from streamzy.guards.context import SYSTEM
    from tests.conftest import csrf_of, login

    await server.make_user("root", admin=True)
    bob = await server.make_user("bob")
    owner = await server.services.accounts.by_username("root")
    assert owner is not None
    room = await server.services.rooms.create(owner.id, "ops", "", False, SYSTEM)
    seconds = server.services.settings.step_up_seconds
    async with server.client() as admin:
        assert (await login(admin, "root")).status_code == 302
        token = await csrf_of(admin, "/admin/users")
        server.clock.advance(seconds + 1)  # the sign-in no longer counts

        async def call(method: str, path: str, data: dict[str, str],
                       **headers: str) -> httpx.Response:
            if method == "GET":
                return await admin.get(path, headers=headers)
            return await admin.post(path, data={**data, "csrf_token": token},
                                    headers={"Referer": server.url + "/admin/users", **headers})

        cases = [(m, p.format(bob=bob.id, room=room.id), d) for m, p, d in STEP_UP_TABLE]
        for method, path, data in cases:
            page = await call(method, path, data)
            back = path if method == "GET" else "/admin/users"
            assert page.status_code == 303, (path, data, page.status_code)
            assert page.headers["location"] == "/account/confirm?next=" + quote(back, safe="/")
            api = await call(method, path, data, Accept="application/json")
            assert api.status_code == 403, (path, data)
            assert api.json()["code"] == "step_up_required"
        # Enabling and unlocking are not dangerous: no step-up.
        for action in ("enable", "unlock"):
            done = await call("POST", f"/admin/users/{bob.id}", {"action": action})
            assert done.status_code == 302, action
        # Nothing dangerous happened while refused: no event but the sign-in and those two.
        before = [(r.event, r.detail) for r in await server.audit_rows()]
        assert {event for event, _ in before} == {"room_created", "login_succeeded",
                                                  "account_changed"}
        assert [detail for event, detail in before if event == "account_changed"] == [
            f'{{"action": "{a}", "target_user_id": {bob.id}}}' for a in ("enable", "unlock")]
        proved = await admin.post("/account/confirm", data={
            "password": TEST_PASSWORD, "next": "/admin/users", "csrf_token": token})
        assert proved.status_code == 303 and proved.headers["location"] == "/admin/users"
        for method, path, data in cases:  # within the window: every gate opens
            answer = await call(method, path, data)
            assert not (answer.status_code == 303 and "/account/confirm" in
                        answer.headers.get("location", "")), (path, data)
            assert answer.status_code < 500, (path, data, answer.text)
    assert len(await server.audit_rows("step_up_passed")) == 1
