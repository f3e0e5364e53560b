"""ORM models. Message text is never stored here in clear: only Fernet ciphertext."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy import false as sa_false
from sqlalchemy import true as sa_true
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a real BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")
UtcDateTime = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(32), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    email: Mapped[str] = mapped_column(String(254), default="")
    password_hash: Mapped[str] = mapped_column(String(100), default="")
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_bot: Mapped[bool] = mapped_column(Boolean, default=False)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=True)
    password_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    password_changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # Whether people may open a direct conversation with this account (bots: where an
    # admin allowed it).
    accepts_dms: Mapped[bool] = mapped_column(Boolean, default=True, server_default=sa_true())
    # Set when an admin erased the account (GDPR-style): the row stays, anonymised, so that
    # audit rows and message tombstones keep pointing at one id.
    erased_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # A confirmed TOTP or at least one passkey (kept in step with those tables in the same
    # transaction): every session resolve reads it, so it is a column, not a join.
    has_second_factor: Mapped[bool] = mapped_column(Boolean, default=False,
                                                    server_default=sa_false())


class Application(Base):
    __tablename__ = "applications"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(32), index=True)
    # The first pending application for a name holds it here (NULL once decided, and NULL
    # for later applications for the same name, which are stored all the same so that the
    # applicant cannot tell a taken name from a free one); the admin queue shows conflicts.
    pending_username: Mapped[str | None] = mapped_column(String(32), unique=True, nullable=True)
    # SHA-256 of the status reference shown once to the applicant (never the reference).
    reference_digest: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    display_name: Mapped[str] = mapped_column(String(64))
    email: Mapped[str] = mapped_column(String(254))
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    client_ip: Mapped[str] = mapped_column(String(64), default="")
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    decided_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    reject_reason: Mapped[str] = mapped_column(Text, default="")
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )


class Session(Base):
    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    client_ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(256), default="")
    # When this session last proved its owner again (sign-in, or the step-up page): the
    # dangerous admin actions want it recent.
    reauth_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # How it was signed in: "password", "totp", "recovery", "passkey" ("" before 0005).
    signed_in_with: Mapped[str] = mapped_column(String(16), default="", server_default="")


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    event: Mapped[str] = mapped_column(String(48), index=True)
    user_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    client_ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(256), default="")
    request_id: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[str] = mapped_column(Text, default="{}")
    # Tamper evidence: a keyed hash over this row and the previous row's chain value, so an
    # edited, inserted or deleted row breaks the chain from there on (guards/audit_chain.py).
    chain: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Room(Base):
    __tablename__ = "rooms"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    topic: Mapped[str] = mapped_column(String(256), default="")
    is_private: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    key_version: Mapped[int] = mapped_column(Integer, default=1)
    # "room" or "dm" (a direct conversation: private, its name generated, never listed to
    # others). dm_key identifies a DM by its members (SHA-256 of the sorted user ids), so
    # opening one with the same people twice finds the same conversation.
    kind: Mapped[str] = mapped_column(String(8), default="room", server_default="room")
    dm_key: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    # The room's change sequence: every edit, delete and reaction takes the next number,
    # so a client that was away can ask for what changed after the last one it saw.
    last_change: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    archived_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    slow_mode_seconds: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Messages older than this many days are purged (None: the server-wide setting).
    retention_days: Mapped[int | None] = mapped_column(Integer, nullable=True)


class RoomKey(Base):
    """A room's Fernet data key, stored only wrapped by the master keys."""

    __tablename__ = "room_keys"
    __table_args__ = (UniqueConstraint("room_id", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    destroyed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # Which master key wraps it (a short fingerprint, never the key): a master key can be
    # retired once no row names it.
    master_key_id: Mapped[str | None] = mapped_column(String(16), nullable=True, index=True)


class Membership(Base):
    __tablename__ = "memberships"

    room_id: Mapped[int] = mapped_column(
        ForeignKey("rooms.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    joined_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_read_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    # "owner", "moderator" or "member".
    role: Mapped[str] = mapped_column(String(16), default="member", server_default="member")
    muted_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("room_id", "seq"),
        UniqueConstraint("sender_id", "client_msg_id"),
        Index("ix_messages_room_change", "room_id", "change_seq"),
        # Only @room messages: the unread-mention count finds them without a scan.
        Index("ix_messages_room_mentions", "room_id", "seq",
              sqlite_where=text("mentions_room"), postgresql_where=text("mentions_room")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    sender_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    client_msg_id: Mapped[str] = mapped_column(String(64))
    key_version: Mapped[int] = mapped_column(Integer)
    # Empty once the message is deleted: the ciphertext is destroyed, not hidden.
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # The message this one answers (same room). Not a foreign key: a parent removed by
    # retention leaves the reply standing, shown without its quote.
    reply_to_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    mentions_room: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    edited_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # The room's change sequence number of this message's latest edit, delete or reaction.
    change_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Reaction(Base):
    """One person's reaction to a message. The emoji is sealed with the room key like the
    text; ``emoji_mac`` (HMAC under a key derived from the room key) makes "the same emoji"
    comparable for the toggle without storing it readable."""

    __tablename__ = "reactions"
    __table_args__ = (UniqueConstraint("message_id", "user_id", "emoji_mac"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    emoji_mac: Mapped[str] = mapped_column(String(64))
    key_version: Mapped[int] = mapped_column(Integer)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Mention(Base):
    """Who a message mentions by name (metadata, like its sender): the per-room mention
    counter counts these after the reader's position."""

    __tablename__ = "mentions"
    __table_args__ = (Index("ix_mentions_user_room_seq", "user_id", "room_id", "seq"),)

    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    room_id: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(BigInteger)


class RoomBan(Base):
    __tablename__ = "room_bans"

    room_id: Mapped[int] = mapped_column(
        ForeignKey("rooms.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    banned_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Report(Base):
    """A reported message, for the admins' queue. The reporter's reason is sealed with the
    room key."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    reporter_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    key_version: Mapped[int] = mapped_column(Integer)
    reason_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    resolved_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class BotToken(Base):
    __tablename__ = "bot_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class SystemState(Base):
    """Small named facts the processes share through the database: the keyring epoch, the
    rotation checkpoint, when the audit chain and the last backup were verified, the last
    purge (``storage/system_state.py``)."""

    __tablename__ = "system_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class TotpCredential(Base):
    """A user's TOTP secret, sealed under the master keys (storage/secret_box.py), and the
    last time step accepted (a code is never accepted twice)."""

    __tablename__ = "totp_credentials"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    secret: Mapped[bytes] = mapped_column(LargeBinary)
    master_key_id: Mapped[str | None] = mapped_column(String(16), nullable=True, index=True)
    last_step: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # NULL while enrolment waits for the first correct code.
    confirmed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class RecoveryCode(Base):
    """One single-use recovery code, stored only as a keyed hash."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class WebAuthnCredential(Base):
    """A passkey: its credential id (base64url), COSE public key and signature counter."""

    __tablename__ = "webauthn_credentials"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    credential_id: Mapped[str] = mapped_column(String(512), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    transports: Mapped[str] = mapped_column(String(128), default="", server_default="")
    name: Mapped[str] = mapped_column(String(64), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class SignInChallenge(Base):
    """A short-lived challenge known by the SHA-256 of a random token in its own cookie.

    ``second_factor``: the password was right, the second factor is owed (half-signed-in is
    not a session: nothing else accepts this token). ``passkey_sign_in``: a WebAuthn
    challenge for signing in with a passkey. ``passkey_register``: a registration challenge
    bound to a session. ``step_up``: a WebAuthn challenge for re-authentication.
    """

    __tablename__ = "sign_in_challenges"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(24))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                                nullable=True)
    session_id: Mapped[int | None] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), nullable=True)
    challenge: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    client_ip: Mapped[str] = mapped_column(String(64), default="", server_default="")


class Attachment(Base):
    """A file shared in a room: bytes, name and thumbnail sealed with the room's data key
    (``key_version``), like message text. ``public_id`` (random) names it in URLs; every
    fetch still checks room membership. ``message_id`` is NULL until a message carries it."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), nullable=True, index=True)
    uploader_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True, index=True)
    key_version: Mapped[int] = mapped_column(Integer)
    name_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    content_type: Mapped[str] = mapped_column(String(64))  # sniffed, from the allowlist
    size: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    thumbnail: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SearchTerm(Base):
    """One blind-index entry: HMAC (truncated to 128 bits, hex) of a normalised word or
    prefix under a key derived from the room's data key version. Never the word."""

    __tablename__ = "search_terms"
    # No index on room_id: every term written would update it, and only shredding a room
    # needs it (that finds the room's terms through its messages). SQLite: WITHOUT ROWID.
    __table_args__ = (Index("ix_search_terms_term", "term", "message_id"),
                      {"sqlite_with_rowid": False})

    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"),
                                            primary_key=True)
    term: Mapped[str] = mapped_column(String(32), primary_key=True)
    room_id: Mapped[int] = mapped_column(BigId)  # not a foreign key: see migration 0006
    key_version: Mapped[int] = mapped_column(Integer)
