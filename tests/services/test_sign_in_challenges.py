"""Sign-in challenges: the half-signed-in step expires, and abandoned ones are deleted."""

from __future__ import annotations

from sqlalchemy import func, select

from streamzy.clock import ManualClock
from streamzy.services.sign_in_challenges import PASSKEY_SIGN_IN, SECOND_FACTOR
from streamzy.storage.models import SignInChallenge
from streamzy.wiring import Services
from tests.conftest import CLIENT, make_user


async def _rows(services: Services) -> int:
    async with services.db.unit() as db:
        return int((await db.execute(select(func.count()).select_from(SignInChallenge)))
                   .scalar_one())


async def test_abandoned_steps_are_purged_and_live_ones_kept(services: Services,
                                                             clock: ManualClock) -> None:
    user = await make_user(services, "alice")
    lifetime = services.settings.second_factor_seconds
    old = await services.challenges.start(SECOND_FACTOR, CLIENT, user_id=user.id)
    clock.advance(lifetime - 10)
    live = await services.challenges.start(PASSKEY_SIGN_IN, CLIENT)
    clock.advance(20)  # the first is now past its lifetime, the second is not
    assert await services.challenges.purge_expired() == 1
    assert await _rows(services) == 1
    assert await services.challenges.find(old, SECOND_FACTOR) is None
    assert await services.challenges.find(live, PASSKEY_SIGN_IN) is not None
    # A token is good for its own purpose only.
    assert await services.challenges.find(live, SECOND_FACTOR) is None
