"""The admin console: the approval queue, user management and the audit log."""

from __future__ import annotations

from datetime import UTC, datetime

from quart import Blueprint, Response, redirect, render_template

from streamzy.guards.audit import AuditQuery, ExportFormat
from streamzy.guards.validation import InputError
from streamzy.web.current import info, services, session
from streamzy.web.forms import AuditFilter, EmptyForm, RejectForm, UserActionForm
from streamzy.web.parsing import form_model, query_model
from streamzy.web.policy import admin_only, limited

bp = Blueprint("admin", __name__, url_prefix="/admin")
AUDIT_PAGE = 100
EXPORT_MAX = 10_000


@bp.get("/applications")
@admin_only
@limited("pages")
async def queue() -> str:
    pending = await services().applications.pending()
    return await render_template("admin_queue.html", applications=pending)


@bp.post("/applications/<int:application_id>/approve")
@admin_only
@limited("pages")
async def approve(application_id: int) -> str:
    await form_model(EmptyForm)
    user, password = await services().applications.approve(application_id, session().user_id,
                                                           info())
    # Shown exactly once: this response is never cached and the password is not stored.
    return await render_template("admin_approved.html", user=user, password=password)


@bp.post("/applications/<int:application_id>/reject")
@admin_only
@limited("pages")
async def reject(application_id: int) -> Response:
    form = await form_model(RejectForm)
    await services().applications.reject(application_id, session().user_id, form.reason, info())
    return redirect("/admin/applications?rejected=1")  # type: ignore[return-value]


@bp.get("/users")
@admin_only
@limited("pages")
async def users() -> str:
    svc = services()
    return await render_template("admin_users.html", users=await svc.accounts.list_users(),
                                 now=svc.clock.now(), me=session().user_id)


@bp.post("/users/<int:user_id>")
@admin_only
@limited("pages")
async def user_action(user_id: int) -> Response | str:
    svc = services()
    form = await form_model(UserActionForm)
    actor = session().user_id
    match form.action:
        case "disable" | "enable":
            await svc.accounts.set_active(actor, user_id, form.action == "enable", info())
        case "unlock":
            await svc.accounts.unlock(actor, user_id, info())
        case "grant_admin" | "revoke_admin":
            await svc.accounts.set_admin(actor, user_id, form.action == "grant_admin", info())
        case "reset_password":
            password = await svc.accounts.reset_password(actor, user_id, info())
            user = await svc.accounts.get(user_id)
            return await render_template("admin_approved.html", user=user, password=password,
                                         reset=True)
    # Where the admin lands says what happened (the page words it; ids only, no free text).
    return redirect(f"/admin/users?done={form.action}&user={user_id}")  # type: ignore[return-value]


def _parse_time(value: str, field: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InputError("invalid_input", {field: "Use a date like 2026-01-31T12:00."}) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@bp.get("/audit")
@admin_only
@limited("pages")
async def audit() -> Response | str:
    audit_log = services().audit_log
    filters = query_model(AuditFilter)
    query = AuditQuery(event=filters.event,
                       user_id=int(filters.user_id) if filters.user_id else None,
                       since=_parse_time(filters.since, "since"),
                       until=_parse_time(filters.until, "until"))
    if filters.format in ("csv", "json"):
        fmt: ExportFormat = "json" if filters.format == "json" else "csv"
        export = await audit_log.export(query, fmt, info(), session().user_id, limit=EXPORT_MAX)
        response = Response(export.text, mimetype="application/json" if fmt == "json"
                            else "text/csv")
        response.headers["Content-Disposition"] = f'attachment; filename="audit.{fmt}"'
        return response
    page = max(1, int(filters.page or 1))
    rows = await audit_log.search(query, limit=AUDIT_PAGE, offset=(page - 1) * AUDIT_PAGE)
    return await render_template("admin_audit.html", rows=rows, filters=filters, page=page,
                                 has_more=len(rows) == AUDIT_PAGE,
                                 events=await audit_log.event_names())
