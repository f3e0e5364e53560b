"""Helpers for tests of the second factor: enrol an account, compute its codes."""

from __future__ import annotations

import pyotp

from streamzy.clock import Clock
from streamzy.storage.models import User
from streamzy.wiring import Services
from tests.conftest import CLIENT


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
