"""WebAuthn checks for passkeys, through py_webauthn: who the relying party is, the options a
browser gets, and the verification of what it answers, each failure named for the audit.

No state here: ``services/passkeys.py`` keeps challenges and credentials and decides what a
result means (sign-in, second step, step-up, enrolment).
"""

from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from webauthn import (
    base64url_to_bytes,
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from streamzy.services.content import bidi_problem, has_control_chars

log = logging.getLogger("streamzy.passkeys")

# What the browser is given to complete a ceremony; ours, in milliseconds (a hint only: the
# challenge row's own lifetime is what the server enforces).
CEREMONY_TIMEOUT_MS = 120_000
NAME_MAX_CHARS = 64
DEFAULT_NAME = "Passkey"
# A credential id is at most 1023 bytes by the spec; we store up to 512 base64url chars
# (384 bytes), which every authenticator we know of stays far below.
CREDENTIAL_ID_MAX_CHARS = 512
_BASE64URL = re.compile(r"^[A-Za-z0-9_-]{16,512}$")
TRANSPORTS_MAX_CHARS = 128
_KNOWN_TRANSPORTS = {t.value for t in AuthenticatorTransport}

# py_webauthn names each failure in its message only; these map the ones the audit and the
# tests tell apart. Anything else is "invalid".
_REASONS = (
    ("Unexpected client data origin", "wrong_origin"),
    ("Unexpected RP ID hash", "wrong_rp_id"),
    ("Client data challenge was not expected challenge", "wrong_challenge"),
    ("Unexpected client data type", "wrong_type"),
    ("User verification is required", "not_verified"),
    ("User was not present", "not_present"),
    ("User presence was required", "not_present"),
    ("Could not verify authentication signature", "bad_signature"),
)


@dataclass(frozen=True)
class RelyingParty:
    """Who the passkeys belong to: the RP id (a domain, never an IP address), a display name,
    and the exact origin the browser must report in clientDataJSON."""

    id: str
    name: str
    origin: str


@dataclass(frozen=True)
class NewCredential:
    credential_id: str  # base64url, as browsers and py_webauthn spell it
    public_key: bytes  # COSE
    sign_count: int
    transports: str  # comma-separated known transport names


@dataclass(frozen=True)
class Assertion:
    sign_count: int
    user_verified: bool


class CheckFailed(Exception):
    """The browser's answer was refused; ``reason`` is a stable word for the audit."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def reason_of(error: Exception) -> str:
    text = str(error)
    for prefix, reason in _REASONS:
        if text.startswith(prefix):
            return reason
    return "invalid"


def clean_name(raw: str) -> str:
    """A passkey's label: one line, NFC, at most 64 characters; empty becomes "Passkey".
    Shown through autoescaped templates only."""
    name = unicodedata.normalize("NFC", raw).strip()
    if has_control_chars(name, multiline=False) or bidi_problem(name):
        raise ValueError("control characters")
    if len(name) > NAME_MAX_CHARS:
        raise ValueError("too long")
    return name or DEFAULT_NAME


def credential_id_of(credential: dict[str, Any]) -> str | None:
    """The credential id the browser names, if it is plausibly one (a lookup key only)."""
    value = credential.get("id")
    if isinstance(value, str) and _BASE64URL.fullmatch(value):
        return value
    return None


def user_handle_of(credential: dict[str, Any]) -> str | None:
    response = credential.get("response")
    value = response.get("userHandle") if isinstance(response, dict) else None
    return value if isinstance(value, str) and value else None


def user_handle(user_id: int) -> bytes:
    """The WebAuthn user handle: the account's number as 8 bytes (no name, no e-mail)."""
    return user_id.to_bytes(8, "big")


def _descriptors(credential_ids: list[str],
                 transports: dict[str, str] | None = None) -> list[PublicKeyCredentialDescriptor]:
    found = []
    for cid in credential_ids:
        names = (transports or {}).get(cid, "")
        known = [AuthenticatorTransport(t) for t in names.split(",") if t in _KNOWN_TRANSPORTS]
        found.append(PublicKeyCredentialDescriptor(id=base64url_to_bytes(cid),
                                                   transports=known or None))
    return found


def registration_options(rp: RelyingParty, user_id: int, username: str, display_name: str,
                         challenge: bytes, existing: dict[str, str]) -> str:
    """navigator.credentials.create() options as JSON: no attestation, a discoverable
    credential preferred (so it can sign in without a username), user verification
    preferred, and the account's passkeys excluded (no second copy on one authenticator)."""
    options = generate_registration_options(
        rp_id=rp.id, rp_name=rp.name, user_id=user_handle(user_id), user_name=username,
        user_display_name=display_name or username, challenge=challenge,
        timeout=CEREMONY_TIMEOUT_MS, attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED),
        exclude_credentials=_descriptors(list(existing), existing))
    return options_to_json(options)


def authentication_options(rp: RelyingParty, challenge: bytes, allowed: dict[str, str], *,
                           verify_user: bool) -> str:
    """navigator.credentials.get() options as JSON. ``allowed`` empty: any discoverable
    credential for this RP (signing in without a username)."""
    options = generate_authentication_options(
        rp_id=rp.id, challenge=challenge, timeout=CEREMONY_TIMEOUT_MS,
        allow_credentials=_descriptors(list(allowed), allowed),
        user_verification=(UserVerificationRequirement.REQUIRED if verify_user
                           else UserVerificationRequirement.PREFERRED))
    return options_to_json(options)


def _transports_of(credential: dict[str, Any]) -> str:
    response = credential.get("response")
    given = response.get("transports") if isinstance(response, dict) else None
    if not isinstance(given, list):
        return ""
    names = sorted({t for t in given if isinstance(t, str) and t in _KNOWN_TRANSPORTS})
    return ",".join(names)[:TRANSPORTS_MAX_CHARS]


async def verify_new(rp: RelyingParty, challenge: bytes, credential: dict[str, Any]) -> NewCredential:
    """Check a registration answer (challenge, origin, RP id, user presence, supported key);
    raises CheckFailed. Run in a thread: attestation formats may check signatures."""
    try:
        verified = await asyncio.to_thread(
            verify_registration_response, credential=credential, expected_challenge=challenge,
            expected_rp_id=rp.id, expected_origin=rp.origin, require_user_presence=True)
    except Exception as exc:  # a hostile payload can make any parser raise: all refusals
        log.debug("passkey registration refused: %s", exc)
        raise CheckFailed(reason_of(exc)) from None
    credential_id = bytes_to_base64url(verified.credential_id)
    if len(credential_id) > CREDENTIAL_ID_MAX_CHARS:
        raise CheckFailed("credential_id_too_long")
    return NewCredential(credential_id, verified.credential_public_key, verified.sign_count,
                         _transports_of(credential))


async def verify_assertion(rp: RelyingParty, challenge: bytes, credential: dict[str, Any], *,
                           public_key: bytes, stored_count: int,
                           verify_user: bool) -> Assertion:
    """Check an authentication answer: challenge, origin, RP id, presence (and verification
    when asked), the signature; then the counter. Raises CheckFailed.

    The library is given a stored count of 0 so that it checks the signature first: only a
    correctly signed answer can then be called a cloned authenticator ("counter_regressed",
    when both counts are non-zero and the new one is not larger). Authenticators that never
    count (synced passkeys report 0) pass.
    """
    try:
        verified = await asyncio.to_thread(
            verify_authentication_response, credential=credential, expected_challenge=challenge,
            expected_rp_id=rp.id, expected_origin=rp.origin, credential_public_key=public_key,
            credential_current_sign_count=0, require_user_verification=verify_user)
    except Exception as exc:  # a hostile payload can make any parser raise: all refusals
        log.debug("passkey assertion refused: %s", exc)
        raise CheckFailed(reason_of(exc)) from None
    if verified.new_sign_count and stored_count and verified.new_sign_count <= stored_count:
        raise CheckFailed("counter_regressed")
    return Assertion(verified.new_sign_count, verified.user_verified)
