"""``users.has_second_factor``: kept in step with the second-factor tables.

Every session resolve reads the flag (the policy gate and the sign-in step depend on it), so
whoever adds or removes a TOTP secret or a passkey calls ``sync_second_factor`` in the same
transaction.
"""

from __future__ import annotations

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from streamzy.storage.models import TotpCredential, User, WebAuthnCredential


async def sync_second_factor(session: AsyncSession, user_id: int) -> bool:
    """Recompute the flag for ``user_id`` inside the caller's transaction; returns it."""
    totp = exists().where(TotpCredential.user_id == user_id,
                          TotpCredential.confirmed_at.is_not(None))
    passkey = exists().where(WebAuthnCredential.user_id == user_id)
    has = bool((await session.execute(select(totp | passkey))).scalar())
    await session.execute(update(User).where(User.id == user_id).values(has_second_factor=has))
    return has
