"""Run ``streamzy`` as a real process against the database and keys a test's services use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from streamzy.wiring import Services

ROOT = Path(__file__).resolve().parents[2]


def streamzy(services: Services, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    settings = services.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMZY_")}
    env.update(
        PYTHONPATH=str(ROOT), STREAMZY_BCRYPT_ROUNDS="4",
        STREAMZY_DATABASE_URL=settings.database_url,
        STREAMZY_SECRET_KEY=settings.secret_key.get_secret_value(),
        STREAMZY_PASSWORD_PEPPER=settings.password_pepper.get_secret_value(),
        STREAMZY_MESSAGE_KEYS=",".join(k.get_secret_value() for k in settings.message_keys),
        STREAMZY_AUDIT_LOG_PATH=str(cwd / "cli-audit.log"))
    return subprocess.run([sys.executable, "-m", "streamzy.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
