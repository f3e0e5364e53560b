"""The public pages: landing, the application to join, and its status by reference.

The answer to an application never depends on whether the name is taken or requested
(no enumeration): every well-formed one is stored and gets the same "received" page with
a reference, shown once, for /apply/status.
"""

from __future__ import annotations

from quart import Blueprint, Response, g, redirect, render_template, request

from streamzy.guards.validation import InputError
from streamzy.services.applications import Applications
from streamzy.services.errors import ServiceError
from streamzy.web.current import info
from streamzy.web.forms import ApplyForm, StatusForm
from streamzy.web.parsing import form_model
from streamzy.web.policy import limited, public

ECHOED_FIELDS = ("username", "display_name", "email", "reason")
USERNAME_PROBLEMS = ("invalid_username",)


async def _echo() -> dict[str, str]:
    """Refill the form after an error (rendered escaped, never trusted)."""
    form = await request.form
    return {k: str(form.get(k, ""))[:1000] for k in ECHOED_FIELDS}


def blueprint(*, applications: Applications) -> Blueprint:
    bp = Blueprint("apply", __name__)

    @bp.get("/")
    @public
    @limited("pages")
    async def index() -> Response | str:
        if g.get("session") is not None:
            return redirect("/rooms")  # type: ignore[return-value]
        return await render_template("index.html")

    @bp.get("/apply")
    @public
    @limited("pages")
    async def apply_form() -> str:
        return await render_template("apply.html", form={})

    @bp.post("/apply")
    @public
    @limited("apply")
    async def apply() -> tuple[str, int]:
        try:
            form = await form_model(ApplyForm)
            submitted = await applications.submit(form.username, form.display_name,
                                                  str(form.email), form.reason, info())
        except InputError as exc:
            return await render_template("apply.html", error="Please correct the marked fields.",
                                         fields=exc.fields, form=await _echo()), 400
        except ServiceError as exc:
            field = "username" if exc.code in USERNAME_PROBLEMS else "_"
            return await render_template("apply.html", error=exc.message,
                                         fields={field: exc.message}, form=await _echo()), 400
        # Rendered, not redirected: the reference is shown this once (never cached, never
        # stored in clear) and never travels in a URL.
        return await render_template("apply_done.html", reference=submitted.reference), 200

    @bp.get("/apply/status")
    @public
    @limited("pages")
    async def status_form() -> str:
        return await render_template("apply_status.html")

    @bp.post("/apply/status")
    @public
    @limited("apply_status")
    async def status() -> tuple[str, int]:
        try:
            form = await form_model(StatusForm)
        except InputError as exc:
            return await render_template("apply_status.html", fields=exc.fields,
                                         error="Enter the reference you were given."), 400
        found = await applications.status(form.reference, info())
        if found is None:
            return await render_template(
                "apply_status.html", error="No application has that reference. Check it "
                "and try again."), 404
        return await render_template("apply_status.html", found=found), 200

    return bp
