"""Short-lived challenges known by a random token in their own cookie.

The half-signed-in state (password right, second factor owed) is one of these, never a
session: no page, API call or socket accepts the token, and it expires after
``STREAMZY_SECOND_FACTOR_SECONDS``. Passkey ceremonies keep their WebAuthn challenge here
too (purposes in ``storage/models.py``, ``SignInChallenge``). Only the token's SHA-256 is
stored.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update

from streamzy.clock import Clock, as_utc
from streamzy.storage.crypto import token_digest
from streamzy.storage.db import Database
from streamzy.storage.models import SignInChallenge

SECOND_FACTOR = "second_factor"
PASSKEY_SIGN_IN = "passkey_sign_in"
PASSKEY_REGISTER = "passkey_register"
STEP_UP = "step_up"
MAX_TOKEN_CHARS = 200


@dataclass(frozen=True)
class Challenge:
    id: int
    purpose: str
    user_id: int | None
    session_id: int | None
    challenge: bytes | None
    attempts: int


class SignInChallenges:
    def __init__(self, db: Database, clock: Clock, seconds: int) -> None:
        self._db = db
        self._clock = clock
        self.lifetime = timedelta(seconds=seconds)

    async def start(self, purpose: str, info: Any, *, user_id: int | None = None,
                    session_id: int | None = None, challenge: bytes | None = None) -> str:
        """A new challenge; returns the token for its cookie (shown once, never stored)."""
        token = secrets.token_urlsafe(32)
        async with self._db.unit() as db:
            db.add(SignInChallenge(
                token_hash=token_digest(token), purpose=purpose, user_id=user_id,
                session_id=session_id, challenge=challenge, attempts=0,
                created_at=self._clock.now(), client_ip=info.ip))
        return token

    async def find(self, token: str | None, purpose: str) -> Challenge | None:
        """The live challenge for ``token`` and ``purpose``; an expired one is deleted."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        async with self._db.unit() as db:
            row = (await db.execute(select(SignInChallenge).where(
                SignInChallenge.token_hash == token_digest(token)))).scalar_one_or_none()
            if row is None or row.purpose != purpose:
                return None
            if self._clock.now() - as_utc(row.created_at) > self.lifetime:
                await db.delete(row)
                return None
            return Challenge(row.id, row.purpose, row.user_id, row.session_id, row.challenge,
                             row.attempts)

    async def set_challenge(self, challenge_id: int, challenge: bytes) -> None:
        """Store a fresh WebAuthn challenge on an existing row (one ceremony at a time)."""
        async with self._db.unit() as db:
            await db.execute(update(SignInChallenge).where(SignInChallenge.id == challenge_id)
                             .values(challenge=challenge))

    async def take_challenge(self, challenge_id: int) -> bytes | None:
        """The stored WebAuthn challenge, cleared as it is read: each is answered once.

        The clearing is conditional on the value read, so of two racing answers only one
        gets it (SQLite ignores FOR UPDATE; this holds on both backends)."""
        async with self._db.unit() as db:
            value = (await db.execute(select(SignInChallenge.challenge).where(
                SignInChallenge.id == challenge_id))).scalar_one_or_none()
            if value is None:
                return None
            taken = await db.execute(update(SignInChallenge).where(
                SignInChallenge.id == challenge_id, SignInChallenge.challenge == value)
                .values(challenge=None))
            return value if taken.rowcount == 1 else None

    async def attempt(self, challenge_id: int) -> int:
        """Count one wrong answer; returns how many so far."""
        async with self._db.unit() as db:
            result = await db.execute(
                update(SignInChallenge).where(SignInChallenge.id == challenge_id)
                .values(attempts=SignInChallenge.attempts + 1)
                .returning(SignInChallenge.attempts))
            return int(result.scalar_one_or_none() or 0)

    async def finish(self, challenge_id: int) -> bool:
        """Delete it (passed, abandoned or locked out); True when it still existed, so two
        racing answers cannot both pass."""
        async with self._db.unit() as db:
            result = await db.execute(
                delete(SignInChallenge).where(SignInChallenge.id == challenge_id))
        return bool(result.rowcount)

    async def purge_expired(self) -> int:
        async with self._db.unit() as db:
            result = await db.execute(delete(SignInChallenge).where(
                SignInChallenge.created_at < self._clock.now() - self.lifetime))
        return int(result.rowcount or 0)
