"""create_quart(services) -> the Quart app of the HTTP edge: config, hooks and blueprints.

The one place that hands each web component the services it uses; app.py mounts the
result next to Socket.IO behind the security middleware.
"""

from __future__ import annotations

from quart import Quart

from streamzy.assets import asset_path
from streamzy.web import (
    access,
    admin,
    admin_chat,
    admin_health,
    admin_reports,
    admin_security,
    api,
    apply,
    auth,
    csrf_hook,
    data_lifecycle,
    errors,
    exports,
    files,
    health,
    identity,
    ids,
    metrics,
    passkeys,
    room_manage,
    rooms,
    route_limits,
    search,
    second_factor,
    static_files,
    step_up,
    templating,
    uploads,
)
from streamzy.wiring import Services


def create_quart(services: Services) -> Quart:
    settings = services.settings
    app = Quart(__name__, template_folder=str(asset_path("templates")), static_folder=None)
    app.config.update(
        DEBUG=False,
        PROPAGATE_EXCEPTIONS=False,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        MAX_FORM_MEMORY_SIZE=settings.max_body_bytes,
        MAX_FORM_PARTS=50,
        BODY_TIMEOUT=15,
        SECRET_KEY=settings.secret_key.get_secret_value(),
    )
    # The upload routes' larger body bound, and form files kept in memory (web/uploads.py).
    app.request_class = uploads.request_class(settings.attachment_max_bytes)
    # Before any blueprint is registered: their rules take ids as <id:...> (1 .. 2^63-1).
    app.url_map.converters[ids.CONVERTER] = ids.DatabaseId
    # Hooks run in this order: who is asking, the admin badge, rate limits (before anything
    # expensive), then the route's access rule, then CSRF.
    identity.install(app, settings=settings, sessions=services.sessions, bots=services.bots,
                     audit=services.audit_log)
    templating.install(app, settings=settings, applications=services.applications)
    route_limits.install(app, limiter=services.limiter, settings=settings,
                         audit=services.audit_log)
    access.install(app, audit=services.audit_log, sessions=services.sessions,
                   step_up_seconds=settings.step_up_seconds,
                   metrics_token=settings.metrics_token.get_secret_value())
    csrf_hook.install(app, settings=settings, audit=services.audit_log)
    admin_health.install(app, alerts=services.alerts, audit=services.audit_log)
    errors.install(app)
    for blueprint in (
        static_files.blueprint(),
        health.blueprint(readiness=services.readiness),
        metrics.blueprint(registry=services.metrics.registry),
        apply.blueprint(applications=services.applications),
        auth.blueprint(settings=settings, accounts=services.accounts, sessions=services.sessions,
                       audit=services.audit_log, challenges=services.challenges),
        second_factor.blueprint(settings=settings, accounts=services.accounts,
                                sessions=services.sessions,
                                second_factors=services.second_factors,
                                challenges=services.challenges, audit=services.audit_log),
        admin.blueprint(accounts=services.accounts, applications=services.applications,
                        audit=services.audit_log, clock=services.clock,
                        second_factor_admin=services.second_factor_admin),
        admin_chat.blueprint(rooms=services.rooms, bots=services.bots,
                             room_roles=services.room_roles),
        admin_reports.blueprint(reports=services.reports),
        admin_health.blueprint(health=services.health, alerts=services.alerts),
        exports.blueprint(exports=services.exports),
        step_up.blueprint(settings=settings, accounts=services.accounts,
                          sessions=services.sessions, second_factors=services.second_factors,
                          audit=services.audit_log),
        admin_security.blueprint(second_factor_admin=services.second_factor_admin,
                                 key_console=services.key_console,
                                 step_up_seconds=settings.step_up_seconds),
        room_manage.blueprint(rooms=services.rooms, room_roles=services.room_roles,
                              moderation=services.moderation, settings=settings,
                              clock=services.clock, retention=services.retention),
        data_lifecycle.blueprint(rooms=services.rooms, room_roles=services.room_roles,
                                 accounts=services.accounts, direct=services.direct,
                                 shredder=services.shredder, erasure=services.erasure,
                                 retention=services.retention),
        rooms.blueprint(rooms=services.rooms, settings=settings),
        passkeys.blueprint(settings=settings, passkeys=services.passkeys,
                           sessions=services.sessions, challenges=services.challenges),
        files.blueprint(rooms=services.rooms, attachments=services.attachments),
        api.blueprint(rooms=services.rooms, history=services.history, changes=services.changes,
                      posting=services.posting, message_max_chars=settings.message_max_chars,
                      metrics=services.metrics),
        search.blueprint(search=services.search),
    ):
        app.register_blueprint(blueprint)
    return app
