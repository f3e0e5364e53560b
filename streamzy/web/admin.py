"""The admin console: the approval queue, user management and the audit log."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from quart import Blueprint, Response, redirect, render_template

from streamzy.clock import Clock
from streamzy.guards.audit import AuditLog, AuditQuery, ExportFormat
from streamzy.guards.validation import InputError
from streamzy.services.accounts import Accounts
from streamzy.services.applications import Applications
from streamzy.services.second_factor_admin import SecondFactorAdmin
from streamzy.web.access import step_up_refusal
from streamzy.web.current import info, session
from streamzy.web.forms import ApproveForm, AuditFilter, RejectForm, UserActionForm
from streamzy.web.parsing import form_model, query_model
from streamzy.web.policy import admin_only, limited

AUDIT_PAGE = 100
# "Verify now" answers with the result when the walk is this quick, else says it runs on.
VERIFY_WAIT_SECONDS = 5.0
EXPORT_MAX = 10_000
EXPORT_TYPES: dict[ExportFormat, str] = {"csv": "text/csv", "json": "application/json"}
# User actions that need a fresh proof of identity (step-up); enable and unlock need none.
STEP_UP_ACTIONS = frozenset({"disable", "grant_admin", "revoke_admin", "reset_password",
                             "reset_second_factor"})


def _parse_time(value: str, field: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InputError("invalid_input", {field: "Use a date like 2026-01-31T12:00."}) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _audit_query(filters: AuditFilter) -> AuditQuery:
    return AuditQuery(event=filters.event,
                      user_id=int(filters.user_id) if filters.user_id else None,
                      since=_parse_time(filters.since, "since"),
                      until=_parse_time(filters.until, "until"))


def blueprint(*, accounts: Accounts, applications: Applications, audit: AuditLog,
              clock: Clock, second_factor_admin: SecondFactorAdmin) -> Blueprint:
    bp = Blueprint("admin", __name__, url_prefix="/admin")

    @bp.get("/applications")
    @admin_only
    @limited("pages")
    async def queue() -> str:
        return await render_template("admin_queue.html", entries=await applications.queue())

    @bp.post("/applications/<id:application_id>/approve")
    @admin_only
    @limited("pages")
    async def approve(application_id: int) -> str:
        form = await form_model(ApproveForm)
        user, password = await applications.approve(application_id, session().user_id, info(),
                                                     username=form.username)
        # Shown exactly once: this response is never cached and the password is not stored.
        return await render_template("admin_approved.html", user=user, password=password)

    @bp.post("/applications/<id:application_id>/reject")
    @admin_only
    @limited("pages")
    async def reject(application_id: int) -> Response:
        form = await form_model(RejectForm)
        await applications.reject(application_id, session().user_id, form.reason, info())
        return redirect("/admin/applications?rejected=1")  # type: ignore[return-value]

    @bp.get("/users")
    @admin_only
    @limited("pages")
    async def users() -> str:
        return await render_template("admin_users.html", users=await accounts.list_users(),
                                     now=clock.now(), me=session().user_id)

    @bp.post("/users/<id:user_id>")
    @admin_only
    @limited("pages")
    async def user_action(user_id: int) -> Response | str:
        form = await form_model(UserActionForm)
        actor = session().user_id
        if form.action in STEP_UP_ACTIONS and (refused := await step_up_refusal()):
            return refused
        match form.action:
            case "disable" | "enable":
                await accounts.set_active(actor, user_id, form.action == "enable", info())
            case "unlock":
                await accounts.unlock(actor, user_id, info())
            case "grant_admin" | "revoke_admin":
                await accounts.set_admin(actor, user_id, form.action == "grant_admin", info())
            case "reset_password":
                password = await accounts.reset_password(actor, user_id, info())
                user = await accounts.get(user_id)
                return await render_template("admin_approved.html", user=user,
                                             password=password, reset=True)
            case "reset_second_factor":
                await second_factor_admin.reset(actor, user_id, info())
        # Where the admin lands says what happened (the page words it; ids only, no free text).
        return redirect(  # type: ignore[return-value]
            f"/admin/users?done={form.action}&user={user_id}")

    @bp.get("/audit", endpoint="audit")  # the view is named apart from the audit log
    @admin_only
    @limited("pages")
    async def audit_page() -> Response | str:
        filters = query_model(AuditFilter)
        query = _audit_query(filters)
        if filters.format in ("csv", "json"):
            if refused := await step_up_refusal():  # an export: step-up first
                return refused
            fmt: ExportFormat = "json" if filters.format == "json" else "csv"
            export = await audit.export(query, fmt, info(), session().user_id, limit=EXPORT_MAX)
            response = Response(export.text, mimetype=EXPORT_TYPES[fmt])
            response.headers["Content-Disposition"] = f'attachment; filename="audit.{fmt}"'
            return response
        page = max(1, int(filters.page or 1))
        rows = await audit.search(query, limit=AUDIT_PAGE, offset=(page - 1) * AUDIT_PAGE)
        return await render_template("admin_audit.html", rows=rows, filters=filters, page=page,
                                     has_more=len(rows) == AUDIT_PAGE,
                                     events=await audit.event_names(),
                                     verification=await audit.last_verification(),
                                     verifying=audit.verifying)

    @bp.post("/audit/verify")
    @admin_only
    @limited("pages", "audit_verify")
    async def verify_audit_chain() -> Response:
        # Audited by verify_chain (verified, or broken); the page shows the result. A long
        # walk goes on in the background and the page says it is running.
        task = audit.start_verification(info(), session().user_id)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), VERIFY_WAIT_SECONDS)
        return redirect("/admin/audit#chain")  # type: ignore[return-value]

    return bp
