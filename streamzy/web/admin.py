"""The admin console: the approval queue, user management and the audit log."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

from quart import Blueprint, Response, redirect, render_template
from sqlalchemy import select

from streamzy.guards.validation import InputError
from streamzy.storage.models import AuditEvent
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
    svc = services()
    filters = query_model(AuditFilter)
    query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    if filters.event:
        query = query.where(AuditEvent.event == filters.event)
    if filters.user_id:
        query = query.where(AuditEvent.user_id == int(filters.user_id))
    if (since := _parse_time(filters.since, "since")) is not None:
        query = query.where(AuditEvent.at >= since)
    if (until := _parse_time(filters.until, "until")) is not None:
        query = query.where(AuditEvent.at <= until)
    page = max(1, int(filters.page or 1))
    export = filters.format in ("csv", "json")
    limit = EXPORT_MAX if export else AUDIT_PAGE
    async with svc.db.unit() as db:
        rows = list((await db.execute(query.limit(limit).offset(
            0 if export else (page - 1) * AUDIT_PAGE))).scalars())
        events = [] if export else list((await db.execute(
            select(AuditEvent.event).distinct().order_by(AuditEvent.event))).scalars())
    if export:
        await svc.audit("audit_exported", info(), session().user_id, format=filters.format,
                        rows=len(rows))
        return _export(rows, filters.format)
    return await render_template("admin_audit.html", rows=rows, filters=filters, page=page,
                                 has_more=len(rows) == AUDIT_PAGE, events=events)


def _export(rows: list[AuditEvent], fmt: str) -> Response:
    records = [{
        "time": row.at.isoformat(), "event": row.event, "user_id": row.user_id,
        "ip": row.client_ip, "user_agent": row.user_agent, "request_id": row.request_id,
        "detail": json.loads(row.detail or "{}"),
    } for row in rows]
    if fmt == "json":
        response = Response(json.dumps(records, ensure_ascii=True, indent=1),
                            mimetype="application/json")
    else:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["time", "event", "user_id", "ip", "user_agent", "request_id", "detail"])
        for rec in records:
            cells = [rec["time"], rec["event"], rec["user_id"], rec["ip"], rec["user_agent"],
                     rec["request_id"], json.dumps(rec["detail"], ensure_ascii=True)]
            # Neutralise spreadsheet formulas (CSV injection) in free-text cells.
            writer.writerow([f"'{c}" if isinstance(c, str) and c[:1] in "=+-@\t\r" else c
                             for c in cells])
        response = Response(out.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="audit.{fmt}"'
    return response
