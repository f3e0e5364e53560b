"""``users.has_second_factor``: kept in step with the second-factor tables.

Every session resolve reads the flag (the policy gate and the sign-in step depend on it), so
whoever adds or removes a TOTP secret or a passkey calls ``sync_second_factor`` in the same
transaction.
"""

from __future__ import annotations

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from streamzy.services.errors import Forbidden
from streamzy.storage.models import SystemState, TotpCredential, User, WebAuthnCredential

POLICY_NAME = "second_factor_policy"  # storage/system_state.py SECOND_FACTOR_POLICY


async def sync_second_factor(session: AsyncSession, user_id: int) -> bool:
    """Recompute the flag for ``user_id`` inside the caller's transaction; returns it."""
    totp = exists().where(TotpCredential.user_id == user_id,
                          TotpCredential.confirmed_at.is_not(None))
    passkey = exists().where(WebAuthnCredential.user_id == user_id)
    has = bool((await session.execute(select(totp | passkey))).scalar())
    await session.execute(update(User).where(User.id == user_id).values(has_second_factor=has))
    return has


async def keep_one_if_required(session: AsyncSession, user_id: int) -> None:
    """After removing a factor, inside the same transaction: refuse (Forbidden, so the
    caller's transaction rolls back) when none remains and the policy still wants one of
    this account. Otherwise a live session could drop below the policy and keep chatting
    on its open sockets until they reconnect."""
    if await sync_second_factor(session, user_id):
        return
    policy = (await session.execute(select(SystemState.value).where(
        SystemState.name == POLICY_NAME))).scalar_one_or_none()
    is_admin = bool((await session.execute(select(User.is_admin).where(
        User.id == user_id))).scalar_one_or_none())
    if policy == "everyone" or (policy == "admins" and is_admin):
        raise Forbidden("factor_required", "Your administrators require a second factor: "
                        "set up another one before removing this one.")
