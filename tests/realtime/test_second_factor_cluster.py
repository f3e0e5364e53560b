"""Two Streamzy processes over Redis: an admin reset and a tightened second-factor policy,
made on one process, drop the affected sockets on the other."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import update

from streamzy.storage.models import TotpCredential, User
from tests.conftest import CSRF_META
from tests.faults.processes import user_session
from tests.realtime.helpers import connected
from tests.realtime.test_multiprocess import cluster  # noqa: F401 - the two-process fixture

pytestmark = pytest.mark.slow


async def test_reset_and_policy_drop_sockets_on_the_other_process(
        cluster: dict) -> None:  # noqa: F811 - the fixture imported above
    services = cluster["services"]
    url_a, url_b = cluster["urls"]
    boss_cookie = await user_session(services, "boss")
    bob_cookie = await user_session(services, "bob")
    carol_cookie = await user_session(services, "carol")
    boss = await services.accounts.by_username("boss")
    bob = await services.accounts.by_username("bob")
    assert boss is not None and bob is not None
    now = services.clock.now()
    async with services.db.unit() as db:
        await db.execute(update(User).where(User.id == boss.id)
                         .values(is_admin=True, has_second_factor=True))
        await db.execute(update(User).where(User.id == bob.id).values(has_second_factor=True))
        db.add(TotpCredential(user_id=bob.id, secret=b"sealed", master_key_id="k",
                              last_step=0, created_at=now, confirmed_at=now))
    bob_on_b = await connected(url_b, cookie=bob_cookie)
    carol_on_b = await connected(url_b, cookie=carol_cookie)
    try:
        async with httpx.AsyncClient(base_url=url_a,
                                     cookies={"streamzy_session": boss_cookie}) as http:
            page = await http.get("/admin/users")
            token = CSRF_META.search(page.text).group(1)  # type: ignore[union-attr]
            reset = await http.post(f"/admin/users/{bob.id}", data={
                "action": "reset_second_factor", "csrf_token": token})
            assert reset.status_code == 302, reset.text
            assert await bob_on_b.end_reason() == "second_factor_reset"
            assert carol_on_b.ended == []
            policy = await http.post("/admin/security/policy", data={
                "policy": "everyone", "csrf_token": token})
            assert policy.status_code == 302, policy.text
            assert await carol_on_b.end_reason() == "second_factor_required"
    finally:
        for client in (bob_on_b, carol_on_b):
            await client.close()
