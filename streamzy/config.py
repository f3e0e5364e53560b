"""Settings: the only reader of the environment (``STREAMZY_*`` variables and ``.env``)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DEV_PLACEHOLDER = "change-me"
# Session activity is written at most this often (guards/sessions.py TOUCH_EVERY), so an
# idle timeout must span several such writes or an active session can look idle (401).
SESSION_TOUCH_SECONDS = 60
MIN_SESSION_IDLE_SECONDS = 5 * SESSION_TOUCH_SECONDS
MIN_SECRET_LENGTH = 32


@dataclass(frozen=True)
class Rate:
    """A rate limit: ``count`` events per ``period`` seconds."""

    count: int
    period: float

    @classmethod
    def parse(cls, text: str) -> Rate:
        """Parse ``"10/5m"``, ``"30/m"``, ``"100/h"`` or ``"5/300s"`` (remembered: every
        message asks for its sender's rate)."""
        return _parse_rate(cls, text)


@functools.lru_cache(maxsize=256)
def _parse_rate(cls: type[Rate], text: str) -> Rate:
    match = _RATE.match(text)
    if not match:
        raise ValueError(f"not a rate (expected like '10/5m'): {text!r}")
    count, amount, unit = match.groups()
    period = int(amount or 1) * _UNIT_SECONDS[unit]
    if int(count) < 1 or period < 1:
        raise ValueError(f"a rate needs a count and a period of at least 1: {text!r}")
    return cls(int(count), float(period))


ALERT_OFF = "off"
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def webhook_problem(url: str, secret: SecretStr, *, production: bool) -> str:
    """Why the alert webhook URL cannot be used ("" when it can or is not set): http(s)
    only, a host, a secret to sign with, and https in production unless on this machine."""
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if parts.username or parts.password:
        return "must not carry credentials (the body is signed with the webhook secret)"
    if len(secret.get_secret_value()) < 16:
        return "needs STREAMZY_ALERT_WEBHOOK_SECRET (at least 16 characters) to sign with"
    loopback = parts.hostname in LOOPBACK_HOSTS or parts.hostname.startswith("127.")
    if production and parts.scheme != "https" and not loopback:
        return "production needs https:// (plain http only to a loopback address)"
    return ""


def _split_list(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Every setting Streamzy reads. See ``.env.example`` for what each means."""

    model_config = SettingsConfigDict(
        env_prefix="STREAMZY_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    env: Literal["development", "production"] = "development"
    debug: bool = False
    host: str = "127.0.0.1"
    port: int = 8000

    database_url: str = "sqlite+aiosqlite:///./streamzy.db"
    # Longest wait on a database server for one connect or statement: a hung server then
    # gives error answers ("unavailable") within seconds instead of stalling requests.
    database_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    # SQLite: FULL makes an acked message survive power loss (fsync per group commit);
    # NORMAL only a killed process. See storage/db.py and SECURITY.md.
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    redis_url: str = ""

    secret_key: SecretStr = SecretStr("")
    password_pepper: SecretStr = SecretStr("")
    message_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)

    trusted_hops: int = Field(default=0, ge=0, le=10)
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cookie_secure: bool = False

    bcrypt_rounds: int = Field(default=12, ge=4, le=16)
    session_idle_seconds: int = 2 * 3600  # at least MIN_SESSION_IDLE_SECONDS (_idle_floor)
    session_absolute_seconds: int = Field(default=12 * 3600, ge=60)
    # How often one bulk query re-checks every connected socket's session (0: never; each
    # event then checks its own session when the last check is over 5 s old).
    session_sweep_seconds: float = Field(default=4.0, ge=0, le=3600)
    inactivity_logout_seconds: int = Field(default=30 * 60, ge=30)
    lockout_threshold: int = Field(default=5, ge=1)
    lockout_seconds: int = Field(default=15 * 60, ge=1)
    one_time_password_hours: int = Field(default=72, ge=1)
    password_min_length: int = Field(default=12, ge=8, le=128)
    # Identity: how long a sign-in may wait at the second-factor step (the half-signed-in
    # state: no session exists until it passes); how recent a re-authentication the
    # dangerous admin actions want (the step-up page); the relying party for passkeys
    # (empty: the host the request came to, fine for one name per deployment).
    second_factor_seconds: int = Field(default=300, ge=30, le=1800)
    step_up_seconds: int = Field(default=300, ge=30, le=3600)
    webauthn_rp_id: str = ""
    webauthn_rp_name: str = "Streamzy"
    # The exact origin browsers report for passkey ceremonies (https://chat.example.org);
    # empty: this request's own scheme and host (after the trusted proxy hops).
    webauthn_origin: str = ""

    rate_login: str = "10/5m"
    rate_apply: str = "5/5m"
    rate_apply_status: str = "10/5m"  # looking up an application by its reference
    rate_messages: str = "30/m"
    rate_bot_messages: str = "60/m"
    rate_api: str = "100/h"
    rate_search: str = "60/m"  # searches per client address: each decrypts a page of hits
    rate_pages: str = "300/m"
    rate_static: str = "1200/m"
    # Deleting rooms and conversations, erasing accounts, retention changes (per client).
    rate_data_lifecycle: str = "20/10m"
    rate_socket_events: str = "300/m"
    # Message exports (own messages, an admin's room export) per client address.
    rate_exports: str = "10/h"
    rate_audit_verify: str = "5/5m"  # "Verify now" in the admin console: a whole-table walk
    # Second-factor codes and passkey answers (sign-in step, step-up, enrolment) per client;
    # the account lockout counts wrong codes too.
    rate_second_factor: str = "10/5m"
    # The admin health page (/admin/health) runs every check, a probe of the app included.
    rate_health_check: str = "20/m"
    flood_disconnect_after: int = Field(default=20, ge=1)
    # Sockets: seconds from the Engine.IO handshake to a successful Socket.IO connect; how
    # many such unauthenticated connections one address may hold; refused connects per
    # address and minute before further attempts are refused without a database lookup;
    # live sockets per account (per process: with N processes an account may hold N times).
    socket_auth_deadline_seconds: float = Field(default=10.0, ge=1, le=300)
    # Generous: many users may share one address (a NAT, or a proxy when TRUSTED_HOPS is
    # wrong) and a restart makes all of them reconnect at once; the deadline bounds the rest.
    socket_unauthenticated_per_address: int = Field(default=256, ge=1)
    socket_refusals_per_minute: int = Field(default=120, ge=1)
    sockets_per_user: int = Field(default=20, ge=1)
    sockets_per_bot: int = Field(default=10, ge=1)
    # Large rooms: presence changes and typing indicators of a room go out together, at most
    # one batch per room per interval; a join's acknowledgement lists at most
    # presence_list_limit of the people online (and their count); typing indicators are
    # dropped in rooms with more than typing_room_limit people online; after a planned
    # restart clients are asked to spread their reconnects over sockets/rate seconds.
    presence_interval_seconds: float = Field(default=1.0, ge=0.05, le=60)
    presence_list_limit: int = Field(default=100, ge=1, le=10_000)
    typing_room_limit: int = Field(default=100, ge=0)
    reconnect_rate_per_second: int = Field(default=250, ge=1)
    # A room's presence batches reach at most this many sockets a second: a room of 5,000
    # online gets a batch every 10 s (every presence_interval_seconds in rooms up to 500).
    presence_fanout_per_second: int = Field(default=500, ge=10)
    # With Redis: a process silent this long is taken as dead and whoever it counted online
    # is taken back (a crash must not leave people online for ever).
    presence_process_timeout_seconds: float = Field(default=20.0, ge=1, le=600)

    max_body_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    message_max_chars: int = Field(default=4000, ge=1, le=20000)
    audit_log_path: str = "logs/security_audit.log"
    # The server's own logs (stderr) and the access log (stdout): "json" lines for log
    # shippers, "text" for people; empty means json in production, text in development
    # (streamzy/logs.py). The level applies to the server's loggers.
    log_format: Literal["", "json", "text"] = ""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # A message with markup or a script URL outside Markdown code: "block" refuses it,
    # "flag" delivers it (escaped, as everything is); both audit it. See SECURITY.md.
    suspicious_messages: Literal["block", "flag"] = "block"
    # Conversations: how long after sending a message its sender may still edit it (0:
    # editing is off); how many different reactions one message may collect; who may
    # create rooms (the creator becomes the room's owner).
    edit_window_seconds: int = Field(default=3600, ge=0, le=366 * 86400)
    reactions_per_message: int = Field(default=20, ge=1, le=200)
    room_creation: Literal["admins", "everyone"] = "admins"

    # Keys and data lifecycle. How often each process checks whether room keys changed
    # elsewhere (a rotation, a shredded room) and drops what it cached.
    keyring_check_seconds: float = Field(default=2.0, ge=0.1, le=60)
    # Messages older than this many days are purged (0: kept for ever); a room may set its
    # own period. The audit trail has its own, longer period (0: kept for ever).
    message_retention_days: int = Field(default=0, ge=0, le=36500)
    audit_retention_days: int = Field(default=0, ge=0, le=36500)
    # How often the server runs the retention purge (0: only through `streamzy purge`).
    retention_interval_seconds: float = Field(default=3600.0, ge=0, le=7 * 86400)
    # How often the server verifies the audit chain (0: only `streamzy audit verify`).
    audit_verify_seconds: float = Field(default=86400.0, ge=0, le=30 * 86400)
    # Encrypts backup files (`streamzy backup`); never one of the message keys, so a
    # backup and the keys that open its messages are kept apart.
    backup_key: SecretStr = SecretStr("")
    # Prometheus metrics (streamzy/metrics.py), off unless one of these is set. A separate
    # listener (host:port, e.g. 127.0.0.1:9464) that serves only the metrics; and/or a
    # bearer token that opens /metrics on the chat port (otherwise 404 there).
    metrics_bind: str = ""
    metrics_token: SecretStr = SecretStr("")
    rate_metrics: str = "60/m"  # /metrics on the chat port, per client address
    # Attachments: the largest file, each person's total (their live files' sizes), uploads
    # per person (and per client address), and file downloads per client address.
    attachment_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, le=1024 ** 3)
    attachment_quota_bytes: int = Field(default=200 * 1024 * 1024, ge=1024, le=1024 ** 4)
    rate_uploads: str = "20/10m"
    rate_files: str = "600/m"

    # Security health check (admin page /admin/health, `streamzy check-config --live`):
    # warn when the oldest room key in use is older than this many days; fail when the
    # last verified backup (`streamzy backup --verify`) is older than this many hours.
    key_max_age_days: int = Field(default=365, ge=1, le=3650)
    backup_max_age_hours: int = Field(default=48, ge=1, le=24 * 366)

    # Alerts: "count/period" thresholds ("off" disables one). Crossing one records an audit
    # event `alert`, shows a banner in the admin console and (with a URL) posts a signed
    # webhook; one alert per kind and key per cool-down, the next one counts what it held back.
    alert_failed_signins_per_address: str = "20/10m"
    alert_failed_signins_per_account: str = "10/10m"
    alert_lockouts: str = "3/10m"
    alert_refused_sockets: str = "100/5m"
    alert_audit_write_failures: str = "1/5m"
    alert_unreadable_messages: str = "1/10m"
    alert_cooldown_seconds: int = Field(default=900, ge=1, le=7 * 86400)
    alert_webhook_url: str = ""
    alert_webhook_secret: SecretStr = SecretStr("")
    alert_webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # Retries after a failed delivery, waiting backoff, 2x backoff, 4x ... between them.
    alert_webhook_retries: int = Field(default=5, ge=0, le=10)
    alert_webhook_backoff_seconds: float = Field(default=2.0, ge=0.001, le=600)

    @field_validator("message_keys", "allowed_origins", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        return _split_list(value)

    @field_validator("session_idle_seconds")
    @classmethod
    def _idle_floor(cls, value: int) -> int:
        if value < MIN_SESSION_IDLE_SECONDS:
            raise ValueError(
                f"STREAMZY_SESSION_IDLE_SECONDS must be at least {MIN_SESSION_IDLE_SECONDS} "
                f"(got {value}): session activity is recorded at most every "
                f"{SESSION_TOUCH_SECONDS} s, so a shorter idle timeout ends sessions in use")
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _no_wildcard(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin == "*" or "://" not in origin:
                raise ValueError(f"list exact origins like https://chat.example.org: {origin!r}")
        return [origin.rstrip("/") for origin in value]

    @field_validator("webauthn_origin")
    @classmethod
    def _one_origin(cls, value: str) -> str:
        value = value.rstrip("/")
        if value and (value == "*" or "://" not in value or "/" in value.split("://", 1)[1]):
            raise ValueError(f"an exact origin like https://chat.example.org: {value!r}")
        return value

    @model_validator(mode="after")
    def _valid_rates(self) -> Settings:
        """Every ``rate_*`` setting parses (a new limit cannot be forgotten here)."""
        for name in type(self).model_fields:
            if name.startswith("rate_"):
                try:
                    Rate.parse(getattr(self, name))
                except ValueError as exc:
                    raise ValueError(f"STREAMZY_{name.upper()}: {exc}") from None
        return self

    @field_validator("metrics_bind")
    @classmethod
    def _host_and_port(cls, value: str) -> str:
        if value.strip():
            metrics_address(value)
        return value.strip()

    @field_validator("metrics_token")
    @classmethod
    def _strong_metrics_token(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        if raw and (len(raw) < MIN_SECRET_LENGTH or len(set(raw)) < 10):
            raise ValueError(f"STREAMZY_METRICS_TOKEN must be empty (off) or at least "
                             f"{MIN_SECRET_LENGTH} random characters")
        return value

    @property
    def metrics_enabled(self) -> bool:
        return bool(self.metrics_bind or self.metrics_token.get_secret_value())
    @field_validator("alert_failed_signins_per_address", "alert_failed_signins_per_account",
                     "alert_lockouts", "alert_refused_sockets", "alert_audit_write_failures",
                     "alert_unreadable_messages")
    @classmethod
    def _valid_threshold(cls, value: str) -> str:
        if value.strip().lower() != ALERT_OFF:
            Rate.parse(value)
        return value.strip()

    @model_validator(mode="after")
    def _webhook_is_safe(self) -> Settings:
        problem = webhook_problem(self.alert_webhook_url, self.alert_webhook_secret,
                                  production=self.production)
        if problem:
            raise ValueError(f"STREAMZY_ALERT_WEBHOOK_URL: {problem}")
        return self

    @model_validator(mode="after")
    def _audit_outlives_messages(self) -> Settings:
        messages, audit = self.message_retention_days, self.audit_retention_days
        if audit and (not messages or audit < messages):
            raise ValueError(
                f"STREAMZY_AUDIT_RETENTION_DAYS ({audit}) must be 0 (kept for ever) or at "
                f"least STREAMZY_MESSAGE_RETENTION_DAYS ({messages or 'for ever'}): the "
                "record of what happened must outlive what it is about")
        return self

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def log_style(self) -> Literal["json", "text"]:
        """The log format in force: the setting, else json in production, text otherwise."""
        return self.log_format or ("json" if self.production else "text")

    @property
    def session_cookie_name(self) -> str:
        # The __Host- prefix pins the cookie to this exact origin, path / and Secure.
        return "__Host-streamzy_session" if self.cookie_secure else "streamzy_session"

    @property
    def challenge_cookie_name(self) -> str:
        """The half-signed-in step's own cookie (never a session cookie)."""
        return "__Host-streamzy_challenge" if self.cookie_secure else "streamzy_challenge"

    @property
    def anon_cookie_name(self) -> str:
        return "__Host-streamzy_anon" if self.cookie_secure else "streamzy_anon"

    def rate(self, name: str) -> Rate:
        return Rate.parse(getattr(self, f"rate_{name}"))

    def alert_threshold(self, kind: str) -> Rate | None:
        """The threshold of alert ``kind`` (``failed_signins_per_address`` ...); None: off."""
        value: str = getattr(self, f"alert_{kind}")
        return None if value.lower() == ALERT_OFF else Rate.parse(value)


def metrics_address(bind: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:9464`` for IPv6) as (host, port); ValueError otherwise."""
    host, sep, port = bind.strip().rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"STREAMZY_METRICS_BIND must be host:port, e.g. 127.0.0.1:9464: "
                         f"{bind!r}")
    return host, int(port)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _secret_ok(value: SecretStr) -> bool:
    raw = value.get_secret_value()
    return len(raw) >= MIN_SECRET_LENGTH and DEV_PLACEHOLDER not in raw and len(set(raw)) >= 10


def _fernet_ok(value: SecretStr) -> bool:
    try:
        Fernet(value.get_secret_value().encode())
    except (ValueError, TypeError):
        return False
    return len(set(value.get_secret_value())) >= 10


def production_checks(settings: Settings) -> list[Check]:
    """The production checklist; every item must pass before production mode starts."""
    keys = settings.message_keys
    return [
        Check("STREAMZY_SECRET_KEY", _secret_ok(settings.secret_key),
              f"set, at least {MIN_SECRET_LENGTH} random characters, not a placeholder"),
        Check("STREAMZY_PASSWORD_PEPPER", _secret_ok(settings.password_pepper),
              f"set, at least {MIN_SECRET_LENGTH} random characters, not a placeholder"),
        Check("STREAMZY_MESSAGE_KEYS", bool(keys) and all(_fernet_ok(k) for k in keys),
              "one or more Fernet keys (streamzy gen-key), newest first"),
        Check("STREAMZY_DEBUG", not settings.debug, "debug must be off"),
        Check("STREAMZY_COOKIE_SECURE", settings.cookie_secure,
              "cookies must be Secure (serve over HTTPS)"),
        Check("STREAMZY_BCRYPT_ROUNDS", settings.bcrypt_rounds >= 12, "bcrypt cost at least 12"),
    ]


class ConfigError(RuntimeError):
    """The configuration cannot be used; the message names the setting."""


def validate_for_start(settings: Settings) -> None:
    """Refuse to start production with missing, default or weak secrets or insecure cookies."""
    if settings.production:
        failed = [c for c in production_checks(settings) if not c.ok]
        if failed:
            lines = "\n".join(f"  - {c.name}: {c.detail}" for c in failed)
            raise ConfigError(f"production mode refuses to start:\n{lines}")
    if not settings.message_keys:
        raise ConfigError("STREAMZY_MESSAGE_KEYS is empty: run `streamzy init` or `streamzy gen-key`")
    if not all(_fernet_ok(k) for k in settings.message_keys):
        raise ConfigError("STREAMZY_MESSAGE_KEYS holds a value that is not a Fernet key")
    if not settings.secret_key.get_secret_value() or not settings.password_pepper.get_secret_value():
        raise ConfigError("STREAMZY_SECRET_KEY and STREAMZY_PASSWORD_PEPPER must be set")
    if settings.session_absolute_seconds < settings.session_idle_seconds:
        raise ConfigError("STREAMZY_SESSION_ABSOLUTE_SECONDS must be >= the idle timeout")
