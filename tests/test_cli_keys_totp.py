"""TOTP secrets follow the master keys (real subprocesses on the test database): ``keys``
counts them per master key, ``retire-key`` is refused while one is sealed by the key,
``rotate-keys`` re-seals them under the newest, and a secret no configured key opens fails
``check-keys`` and refuses a start."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from streamzy.clock import ManualClock
from streamzy.storage.crypto import master_key_id
from streamzy.storage.models import TotpCredential
from streamzy.wiring import Services, build_services
from tests.conftest import CLIENT, free_port, make_settings, make_user
from tests.test_cli_keys import env_for, streamzy
from tests.totp import code_at, enrol

pytestmark = pytest.mark.slow


async def test_rotate_reseals_totp_secrets_and_retire_waits_for_them(
        services: Services, tmp_path: Path, database_url: str) -> None:
    user = await make_user(services, "tina")
    secret, _ = await enrol(services, user)
    old = services.settings.message_keys[0].get_secret_value()
    new = Fernet.generate_key().decode()
    env = env_for(services, [new, old], tmp_path)
    listed = streamzy(env, tmp_path, "keys")
    assert listed.returncode == 0, listed.stderr
    assert f"{master_key_id(old)}  seals 1 TOTP secret(s)" in listed.stdout
    assert f"{master_key_id(new)}  seals 0 TOTP secret(s)" in listed.stdout
    assert secret not in listed.stdout
    refused = streamzy(env, tmp_path, "retire-key", master_key_id(old))
    assert refused.returncode == 1 and "still seals 1 TOTP secret(s)" in refused.stderr
    rotated = streamzy(env, tmp_path, "rotate-keys", "--no-progress")
    assert rotated.returncode == 0, rotated.stderr
    assert f"TOTP secrets re-sealed under {master_key_id(new)}: 1" in rotated.stdout
    async with services.db.unit() as db:
        row = (await db.execute(select(TotpCredential))).scalar_one()
    assert row.master_key_id == master_key_id(new)
    allowed = streamzy(env, tmp_path, "retire-key", master_key_id(old))
    assert allowed.returncode == 0 and "safe to remove" in allowed.stdout, allowed.stderr
    # With the old key gone the code still checks: the secret really moved.
    clock = ManualClock(services.clock.now())
    clock.advance(60)
    only_new = build_services(make_settings(tmp_path, database_url, message_keys=[new],
                                            secret_key=services.settings.secret_key
                                            .get_secret_value()), clock)
    try:
        outcome = await only_new.second_factors.check_code(
            user.id, code_at(secret, clock), CLIENT, purpose="sign_in")
        assert outcome.ok, outcome
    finally:
        await only_new.close()
    assert "[PASS] keys" in streamzy(env_for(services, [new], tmp_path), tmp_path,
                                     "check-config").stdout


async def test_a_totp_secret_no_key_opens_fails_the_checks_and_refuses_start(
        services: Services, tmp_path: Path) -> None:
    user = await make_user(services, "tina")
    await enrol(services, user)
    env = env_for(services, [Fernet.generate_key().decode()], tmp_path)
    keys = streamzy(env, tmp_path, "check-keys")
    assert keys.returncode == 1 and "1 TOTP secret(s) are sealed" in keys.stderr
    listed = streamzy(env, tmp_path, "keys")
    assert listed.returncode == 1 and "seals 1 TOTP secret(s): no configured key" \
        in listed.stdout
    check = streamzy(env, tmp_path, "check-config")
    assert "[FAIL] keys: 1 TOTP secret(s) are sealed" in check.stdout
    served = streamzy(env, tmp_path, "serve", "--port", str(free_port()))
    assert served.returncode != 0
    assert "refusing to start: 1 TOTP secret(s) are sealed" in served.stderr
