"""Admin console, security: the second-factor policy (off, admins, everyone) with who has a
second factor, and the master keys (``streamzy keys`` in a page, and the re-wrap of every
room key under the newest master key). Changing either needs a fresh step-up."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

from quart import Blueprint, Response, redirect, render_template, request

from streamzy.guards.validation import StrictModel
from streamzy.services.errors import ServiceError
from streamzy.services.key_console import KeyConsole
from streamzy.services.second_factor_admin import SecondFactorAdmin
from streamzy.web.current import info, session
from streamzy.web.forms import EmptyForm
from streamzy.web.parsing import form_model
from streamzy.web.policy import admin_only, limited, step_up

# "Re-wrap now" answers with the result when the pass is this quick, else says it runs on.
REWRAP_WAIT_SECONDS = 5.0


class PolicyForm(StrictModel):
    policy: Literal["off", "admins", "everyone"]


def blueprint(*, second_factor_admin: SecondFactorAdmin, key_console: KeyConsole,
              step_up_seconds: int) -> Blueprint:
    bp = Blueprint("admin_security", __name__, url_prefix="/admin")

    async def security_page(error: str = "", status: int = 200) -> tuple[str, int]:
        return await render_template(
            "admin_security.html", coverage=await second_factor_admin.coverage(),
            error=error, done=request.args.get("done", ""),
            ended=request.args.get("ended", ""), step_up_minutes=step_up_seconds // 60), status

    @bp.get("/security")
    @admin_only
    @limited("pages")
    async def security() -> tuple[str, int]:
        return await security_page()

    @bp.post("/security/policy")
    @admin_only
    @step_up
    @limited("pages")
    async def set_policy() -> Response | tuple[str, int]:
        form = await form_model(PolicyForm)
        try:
            ended = await second_factor_admin.set_policy(session().user_id, form.policy, info())
        except ServiceError as exc:
            return await security_page(exc.message, 403 if exc.kind == "forbidden" else 400)
        return redirect(  # type: ignore[return-value]
            f"/admin/security?done=policy&ended={ended}")

    @bp.get("/keys")
    @admin_only
    @limited("pages")
    async def keys() -> str:
        return await render_template("admin_keys.html", status=await key_console.status(),
                                     last=key_console.last, running=key_console.running)

    @bp.post("/keys/rewrap")
    @admin_only
    @step_up
    @limited("pages")
    async def rewrap_keys() -> Response:
        await form_model(EmptyForm)
        # Audited when it ends (keys_rotated kind=master via=console). A long pass goes on
        # in the background and the page says it is running.
        task = key_console.start_rewrap(session().user_id, info())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), REWRAP_WAIT_SECONDS)
        return redirect("/admin/keys#rewrap")  # type: ignore[return-value]

    return bp
