"""The public pages: landing and the application to join."""

from __future__ import annotations

from quart import Blueprint, Response, g, redirect, render_template, request

from streamzy.guards.validation import InputError
from streamzy.services.applications import Applications
from streamzy.services.errors import ServiceError
from streamzy.web.current import info
from streamzy.web.forms import ApplyForm
from streamzy.web.parsing import form_model
from streamzy.web.policy import limited, public

ECHOED_FIELDS = ("username", "display_name", "email", "reason")
USERNAME_PROBLEMS = ("name_taken", "already_pending", "invalid_username")


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
    async def apply() -> Response | tuple[str, int]:
        try:
            form = await form_model(ApplyForm)
            await applications.submit(form.username, form.display_name, str(form.email),
                                      form.reason, info())
        except InputError as exc:
            return await render_template("apply.html", error="Please correct the marked fields.",
                                         fields=exc.fields, form=await _echo()), 400
        except ServiceError as exc:
            status = 409 if exc.kind == "conflict" else 400
            field = "username" if exc.code in USERNAME_PROBLEMS else "_"
            return await render_template("apply.html", error=exc.message,
                                         fields={field: exc.message}, form=await _echo()), status
        return redirect("/apply/done")  # type: ignore[return-value]

    @bp.get("/apply/done")
    @public
    @limited("pages")
    async def apply_done() -> str:
        return await render_template("apply_done.html")

    return bp
