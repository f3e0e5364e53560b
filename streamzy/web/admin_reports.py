"""The admins' queue of reported messages: each message opened, with its context, who
reported it and why; resolve (acted on) or dismiss (nothing to do)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import StringConstraints
from quart import Blueprint, Response, redirect, render_template

from streamzy.guards.validation import StrictModel
from streamzy.services.reports import Reports
from streamzy.web.current import info, session
from streamzy.web.forms import EmptyForm
from streamzy.web.parsing import form_model, query_model
from streamzy.web.policy import admin_only, limited


class QueueFilter(StrictModel):
    status: Literal["", "open", "resolved", "dismissed", "all"] = ""
    page: Annotated[str, StringConstraints(max_length=6, pattern=r"^\d*$")] = ""
    done: Literal["", "resolved", "dismissed"] = ""
    report: Annotated[str, StringConstraints(max_length=19, pattern=r"^\d*$")] = ""


def blueprint(*, reports: Reports) -> Blueprint:
    bp = Blueprint("admin_reports", __name__, url_prefix="/admin")

    @bp.get("/reports")
    @admin_only
    @limited("pages")
    async def queue() -> str:
        filters = query_model(QueueFilter)
        status = filters.status or "open"
        page = max(1, int(filters.page or 1))
        found = await reports.queue(status, page, session().user_id, info())
        return await render_template("admin_reports.html", queue=found, status=status,
                                     page=page, done=filters.done, report=filters.report)

    async def decide(report_id: int, outcome: Literal["resolved", "dismissed"]) -> Response:
        await form_model(EmptyForm)
        await reports.decide(session().user_id, report_id, outcome, info())
        return redirect(  # type: ignore[return-value]
            f"/admin/reports?done={outcome}&report={report_id}")

    @bp.post("/reports/<id:report_id>/resolve")
    @admin_only
    @limited("pages")
    async def resolve(report_id: int) -> Response:
        return await decide(report_id, "resolved")

    @bp.post("/reports/<id:report_id>/dismiss")
    @admin_only
    @limited("pages")
    async def dismiss(report_id: int) -> Response:
        return await decide(report_id, "dismissed")

    return bp
