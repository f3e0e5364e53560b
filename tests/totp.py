"""Helpers for tests of the second factor: enrol an account, compute its codes."""

from __future__ import annotations

import httpx
import pyotp

from streamzy.clock import Clock, ManualClock
from streamzy.storage.models import User
from streamzy.wiring import Services
from tests.conftest import CLIENT, TEST_PASSWORD, csrf_of, login


async def enrol(services: Services, user: User) -> tuple[str, list[str]]:
    """Set up and confirm TOTP for ``user``; (base32 secret, recovery codes)."""
    enrolment = await services.second_factors.begin_totp(user.id, user.username, CLIENT)
    codes = await services.second_factors.confirm_totp(
        user.id, code_at(enrolment.secret, services.clock), CLIENT)
    services.clock.advance(30)  # the confirming step is used: the next code is fresh
    return enrolment.secret, codes


def code_at(secret: str, clock: Clock, steps: int = 0) -> str:
    """The code an authenticator app shows at the server's time (+ ``steps`` steps)."""
    totp = pyotp.TOTP(secret)
    return totp.at(clock.now(), counter_offset=steps)


class FactorLogins:
    """Sign in accounts that have TOTP, passing the second step with a fresh code.

    Tests of what happens around the second factor (policy, reset) sign people in many
    times; each sign-in moves the clock one step on so a code is never a replay."""

    def __init__(self, clock: ManualClock) -> None:
        self._clock = clock
        self._secrets: dict[str, str] = {}

    async def enrol(self, services: Services, user: User) -> User:
        self._secrets[user.username], _ = await enrol(services, user)
        return user

    async def login(self, client: httpx.AsyncClient, username: str,
                    password: str = TEST_PASSWORD) -> httpx.Response:
        response = await login(client, username, password)
        secret = self._secrets.get(username)
        step = response.headers.get("location", "")
        if secret is None or not step.startswith("/login/second-factor"):
            return response
        self._clock.advance(30)
        token = await csrf_of(client, step)
        return await client.post("/login/second-factor", data={
            "code": code_at(secret, self._clock), "csrf_token": token})
