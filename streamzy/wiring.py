"""Builds every component from settings, in one place (backends chosen here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streamzy.clock import Clock, SystemClock
from streamzy.config import Settings
from streamzy.guards.audit import SERVER as SERVER_INFO
from streamzy.guards.audit import AuditLog
from streamzy.guards.audit_chain import derive_key
from streamzy.guards.ratelimit import MemoryRateStore, RateLimiter, RateStore, RedisRateStore
from streamzy.guards.sessions import SessionStore
from streamzy.metrics import Metrics, build_metrics
from streamzy.services.accounts import Accounts, Policy
from streamzy.services.alert_counts import AlertCounts, MemoryAlertCounts, RedisAlertCounts
from streamzy.services.alert_webhook import AlertWebhook
from streamzy.services.alerts import Alerts
from streamzy.services.applications import Applications
from streamzy.services.attachments import Attachments
from streamzy.services.bots import Bots
from streamzy.services.direct import DirectMessages
from streamzy.services.erasure import Erasure
from streamzy.services.events import EventBus
from streamzy.services.export import Exports
from streamzy.services.health_check import HealthCheck
from streamzy.services.key_console import KeyConsole
from streamzy.services.key_health import KeyWatch
from streamzy.services.key_inventory import KeyInventory
from streamzy.services.message_changes import MessageChanges
from streamzy.services.message_history import MessageHistory
from streamzy.services.message_writer import MessageWriter
from streamzy.services.moderation import Moderation
from streamzy.services.passkeys import Passkeys
from streamzy.services.passwords import PasswordHasher
from streamzy.services.posting import MessagePosting
from streamzy.services.recovery_codes import derive_key as recovery_key
from streamzy.services.reports import Reports
from streamzy.services.retention import Retention
from streamzy.services.room_roles import RoomRoles
from streamzy.services.room_rules import RoomRules
from streamzy.services.rooms import Rooms
from streamzy.services.search import Search
from streamzy.services.second_factor_admin import SecondFactorAdmin
from streamzy.services.second_factors import SecondFactors
from streamzy.services.shredding import Shredder
from streamzy.services.sign_in_challenges import SignInChallenges
from streamzy.storage.crypto import Keyring, MasterKeys
from streamzy.storage.db import Database
from streamzy.storage.secret_box import SecretBox


@dataclass
class Services:
    settings: Settings
    clock: Clock
    events: EventBus
    db: Database
    audit_log: AuditLog
    sessions: SessionStore
    limiter: RateLimiter
    hasher: PasswordHasher
    accounts: Accounts
    applications: Applications
    keyring: Keyring
    rooms: Rooms
    messages: MessageWriter
    history: MessageHistory
    posting: MessagePosting
    bots: Bots
    room_rules: RoomRules
    changes: MessageChanges
    direct: DirectMessages
    room_roles: RoomRoles
    moderation: Moderation
    reports: Reports
    shredder: Shredder
    erasure: Erasure
    retention: Retention
    exports: Exports
    key_watch: KeyWatch
    secret_box: SecretBox
    challenges: SignInChallenges
    metrics: Metrics
    alerts: Alerts
    health: HealthCheck
    second_factors: SecondFactors
    passkeys: Passkeys
    second_factor_admin: SecondFactorAdmin
    key_console: KeyConsole
    search: Search
    attachments: Attachments

    async def audit(self, event: str, info: Any, user_id: int | None = None,
                    **detail: Any) -> None:
        await self.audit_log.record(event, info, user_id, **detail)

    async def audit_throttled(self, key: str, event: str, info: Any,
                              user_id: int | None = None, **detail: Any) -> None:
        await self.audit_log.record_throttled(key, event, info, user_id, **detail)

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        """What /readyz reports: ready while the database answers and storage takes writes;
        a Redis outage degrades (per-process limits, local chat) but does not unready."""
        database = await self.db.ping()
        report: dict[str, Any] = {
            "database": "up" if database else "down",
            "storage": "full" if self.db.storage_full else "writable",
            "audit_write_failures": self.audit_log.write_failures,
        }
        if self.settings.redis_url:
            report["redis"] = "up" if not self.limiter.degraded else "degraded"
        # Re-checked with every keyring epoch check (app.py); a room key no configured
        # master key unwraps means that room's reads and sends fail: not ready.
        unusable = self.key_watch.unusable_rooms
        report["keys"] = ("unchecked" if unusable is None else "usable" if not unusable
                          else f"{unusable} room(s) unusable")
        # A TOTP secret no master key opens locks its owner out: not ready either.
        secrets = self.key_watch.unusable_secrets
        if secrets:
            report["keys"] = (f"{report['keys']}; " if unusable else "") + \
                f"{secrets} TOTP secret(s) unusable"
        return database and not self.db.storage_full and not unusable and not secrets, report

    async def close(self) -> None:
        await self.alerts.close()
        await self.key_console.stop()
        await self.messages.close()
        await self.limiter.store.close()
        await self.audit_log.stop()
        self.audit_log.close()
        await self.db.dispose()


def build_services(settings: Settings, clock: Clock | None = None) -> Services:
    clock = clock or SystemClock()
    # One per app (its own registry): the seam every part counts through.
    metrics = build_metrics(settings.metrics_enabled)
    events = EventBus()
    db = Database(settings.database_url, settings.database_timeout_seconds,
                  settings.sqlite_synchronous)
    audit_log = AuditLog(db, clock, settings.audit_log_path,
                         chain_key=derive_key(settings.secret_key.get_secret_value()),
                         verify_seconds=settings.audit_verify_seconds,
                         retention_days=settings.audit_retention_days,
                         retention_interval=settings.retention_interval_seconds)
    sessions = SessionStore(db, clock, events, settings.session_idle_seconds,
                            settings.session_absolute_seconds)
    store: RateStore = (RedisRateStore(settings.redis_url) if settings.redis_url
                        else MemoryRateStore())
    limiter = RateLimiter(store, clock, metrics=metrics)
    hasher = PasswordHasher(settings.password_pepper.get_secret_value(), settings.bcrypt_rounds,
                            metrics=metrics)
    metrics.watch_pool(db.pool_checked_out, db.pool_capacity)
    metrics.watch_audit_failures(lambda: audit_log.write_failures)
    if isinstance(store, RedisRateStore):
        metrics.watch_circuit("rate_limits", lambda: not store.circuit.closed)

    async def end_sessions(user_id: int, reason: str, keep: int | None) -> int:
        return await sessions.revoke_user(user_id, reason, keep=keep)

    policy = Policy(
        lockout_threshold=settings.lockout_threshold,
        lockout_seconds=settings.lockout_seconds,
        one_time_password_hours=settings.one_time_password_hours,
        password_min_length=settings.password_min_length,
    )
    accounts = Accounts(db, clock, hasher, audit_log.record, end_sessions, policy, events,
                        metrics=metrics)
    applications = Applications(db, clock, accounts, audit_log.record,
                                audit_log.record_throttled)
    keyring = Keyring(db, MasterKeys([k.get_secret_value() for k in settings.message_keys]),
                      clock)
    rooms = Rooms(db, clock, keyring, audit_log.record)
    messages = MessageWriter(db, clock, keyring, audit_log.record, events,
                             max_chars=settings.message_max_chars,
                             suspicious=settings.suspicious_messages, metrics=metrics)
    history = MessageHistory(db, keyring, audit_log.record)
    # Who may write where now (archived, muted, slow mode), cached per room; forgets a room
    # when a moderation event for it is published.
    room_rules = RoomRules(db, clock, limiter=limiter, audit_throttled=audit_log.record_throttled)
    room_rules.subscribe(events)
    attachments = Attachments(db, clock, keyring, rooms, audit_log.record,
                              audit_log.record_throttled, limiter, settings.rate,
                              max_bytes=settings.attachment_max_bytes,
                              quota_bytes=settings.attachment_quota_bytes,
                              can_write=room_rules.can_write)
    posting = MessagePosting(rooms, messages, limiter, settings.rate,
                             audit_log.record_throttled, can_post=room_rules.check_can_post,
                             attachments=attachments)
    bots = Bots(db, clock, accounts, audit_log.record, events)
    changes = MessageChanges(db, clock, keyring, messages, posting, history, events,
                             audit_log.record, edit_window_seconds=settings.edit_window_seconds,
                             reactions_per_message=settings.reactions_per_message,
                             can_moderate=room_rules.can_moderate,
                             can_write=room_rules.can_write)
    direct = DirectMessages(db, clock, keyring, audit_log.record)
    # Keys and data lifecycle: shredding rooms and DMs, erasing people, retention.
    shredder = Shredder(db, clock, keyring, events, audit_log.record)
    rooms.after_leave = shredder.shred_if_abandoned

    async def end_all_sessions(user_id: int, reason: str) -> int:
        return await sessions.revoke_user(user_id, reason)

    erasure = Erasure(db, clock, events, audit_log.record, end_all_sessions, shredder,
                      read_one=history.one)
    retention = Retention(db, clock, audit_log.record,
                          default_days=settings.message_retention_days)
    key_watch = KeyWatch(db, keyring, events, clock)
    alerts = build_alerts(settings, clock, db, audit_log)

    async def unusable_rooms() -> int | None:
        return key_watch.unusable_rooms  # re-checked every minute by the keyring watch

    health = HealthCheck(db, clock, settings, unusable_rooms=unusable_rooms)
    secret_box = SecretBox(keyring.master)
    second_factors = SecondFactors(
        db, clock, secret_box, accounts, hasher, audit_log.record, end_sessions,
        recovery_key=recovery_key(settings.secret_key.get_secret_value()))
    challenges = SignInChallenges(db, clock, settings.second_factor_seconds)
    return Services(settings=settings, clock=clock, events=events, db=db,
                    audit_log=audit_log, sessions=sessions, limiter=limiter, hasher=hasher,
                    accounts=accounts, applications=applications, keyring=keyring,
                    rooms=rooms, messages=messages, history=history, posting=posting,
                    bots=bots, room_rules=room_rules, changes=changes, direct=direct,
                    moderation=Moderation(db, clock, events, audit_log.record,
                                          audit_log.record_throttled),
                    room_roles=RoomRoles(db, clock, rooms, events, audit_log.record,
                                         audit_log.record_throttled,
                                         room_creation=settings.room_creation),
                    reports=Reports(db, clock, keyring, history, limiter, audit_log.record,
                                    audit_log.record_throttled),
                    shredder=shredder, erasure=erasure, retention=retention,
                    exports=Exports(db, keyring, audit_log.record, clock),
                    key_watch=key_watch, alerts=alerts, health=health,
                    secret_box=secret_box,
                    challenges=challenges, metrics=metrics, second_factors=second_factors,
                    passkeys=Passkeys(db, clock, challenges, accounts, audit_log.record),
                    second_factor_admin=SecondFactorAdmin(db, clock, audit_log.record,
                                                          sessions.revoke_users),
                    key_console=KeyConsole(KeyInventory(db, clock, keyring, audit_log.record),
                                           clock, audit_log.record,
                                           lambda: keyring.master.newest_id),
                    search=Search(db, keyring, clock), attachments=attachments)


def build_alerts(settings: Settings, clock: Clock, db: Database, audit_log: AuditLog) -> Alerts:
    """Alerts watch what the audit log records (counted in Redis when configured)."""
    counts: AlertCounts = (RedisAlertCounts(settings.redis_url) if settings.redis_url
                           else MemoryAlertCounts())
    webhook = None
    if settings.alert_webhook_url:
        async def gave_up(payload: dict[str, Any], problem: str) -> None:
            await audit_log.record("alert_webhook_failed", SERVER_INFO, None,
                                   kind=payload.get("kind"), problem=problem)

        webhook = AlertWebhook(settings.alert_webhook_url,
                               settings.alert_webhook_secret.get_secret_value(),
                               timeout=settings.alert_webhook_timeout_seconds,
                               retries=settings.alert_webhook_retries,
                               backoff=settings.alert_webhook_backoff_seconds,
                               on_gave_up=gave_up)
    alerts = Alerts(settings, clock, db, audit_log.record, counts, SERVER_INFO, webhook)
    audit_log.add_listener(alerts.observe)
    return alerts
