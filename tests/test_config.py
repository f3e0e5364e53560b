"""Settings: the documented defaults, and production refusing weak configurations."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from streamzy.config import ConfigError, Rate, Settings, validate_for_start

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No STREAMZY_* variable or .env from the developer's machine leaks into a test."""
    for name in list(os.environ):
        if name.startswith("STREAMZY_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def strong(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "production", "cookie_secure": True,
        "secret_key": secrets.token_urlsafe(48), "password_pepper": secrets.token_urlsafe(48),
        "message_keys": [Fernet.generate_key().decode()],
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def refusal(settings: Settings) -> str:
    with pytest.raises(ConfigError) as caught:
        validate_for_start(settings)
    return str(caught.value)


def test_defaults_match_the_documented_numbers() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.env == "development" and not settings.debug
    assert settings.bcrypt_rounds == 12
    assert settings.session_idle_seconds == 7200
    assert settings.session_absolute_seconds == 43200
    assert settings.inactivity_logout_seconds == 1800
    assert (settings.lockout_threshold, settings.lockout_seconds) == (5, 900)
    assert settings.trusted_hops == 0 and settings.allowed_origins == []
    assert settings.rate("login") == Rate(10, 300.0)
    assert settings.rate("apply") == Rate(5, 300.0)
    assert settings.rate("messages") == Rate(30, 60.0)
    assert settings.rate("api") == Rate(100, 3600.0)
    assert settings.session_cookie_name == "streamzy_session"


@pytest.mark.parametrize(("text", "rate"), [
    ("10/5m", Rate(10, 300)), ("30/m", Rate(30, 60)), ("100/h", Rate(100, 3600)),
    ("5/300s", Rate(5, 300)), ("1/d", Rate(1, 86400)),
])
def test_rates_parse(text: str, rate: Rate) -> None:
    assert Rate.parse(text) == rate


@pytest.mark.parametrize("text", ["", "10", "0/m", "10/0m", "ten/m", "10/5w", "-1/m"])
def test_bad_rates_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        Rate.parse(text)
    with pytest.raises(ValidationError):
        Settings(_env_file=None, rate_login=text)  # type: ignore[call-arg]


@pytest.mark.parametrize("name", [n for n in Settings.model_fields if n.startswith("rate_")])
def test_every_rate_setting_is_checked(name: str) -> None:
    # Every limit, including ones added later (second_factor, uploads, search...).
    with pytest.raises(ValidationError, match=f"STREAMZY_{name.upper()}"):
        Settings(_env_file=None, **{name: "ten/m"})


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMZY_TRUSTED_HOPS", "2")
    monkeypatch.setenv("STREAMZY_ALLOWED_ORIGINS", "https://chat.example.org/, https://b.example")
    monkeypatch.setenv("STREAMZY_MESSAGE_KEYS", "k1,k2")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.trusted_hops == 2
    assert settings.allowed_origins == ["https://chat.example.org", "https://b.example"]
    assert [k.get_secret_value() for k in settings.message_keys] == ["k1", "k2"]


def test_a_good_production_configuration_passes() -> None:
    settings = strong()
    validate_for_start(settings)
    assert settings.production and settings.session_cookie_name == "__Host-streamzy_session"


@pytest.mark.parametrize("key", ["", "change-me-to-a-long-random-string-please-now",
                                 "short-but-random-Zq81x", "a" * 64])
def test_production_refuses_a_weak_secret_key(key: str) -> None:
    message = refusal(strong(secret_key=key))
    assert "STREAMZY_SECRET_KEY" in message
    assert key == "" or key not in message  # a secret is named, never echoed


def test_production_refuses_a_weak_pepper() -> None:
    assert "STREAMZY_PASSWORD_PEPPER" in refusal(strong(password_pepper="change-me"))


@pytest.mark.parametrize("keys", [[], ["not-a-fernet-key"], ["change-me"]])
def test_production_refuses_bad_message_keys(keys: list[str]) -> None:
    assert "STREAMZY_MESSAGE_KEYS" in refusal(strong(message_keys=keys))


def test_production_refuses_debug() -> None:
    assert "STREAMZY_DEBUG" in refusal(strong(debug=True))


def test_production_refuses_insecure_cookies() -> None:
    assert "STREAMZY_COOKIE_SECURE" in refusal(strong(cookie_secure=False))


def test_production_refuses_cheap_bcrypt() -> None:
    assert "STREAMZY_BCRYPT_ROUNDS" in refusal(strong(bcrypt_rounds=10))


def test_every_problem_is_listed_at_once() -> None:
    message = refusal(strong(secret_key="", debug=True, cookie_secure=False))
    for name in ("STREAMZY_SECRET_KEY", "STREAMZY_DEBUG", "STREAMZY_COOKIE_SECURE"):
        assert name in message


def test_development_still_needs_real_keys() -> None:
    with pytest.raises(ConfigError, match="STREAMZY_MESSAGE_KEYS"):
        validate_for_start(strong(env="development", message_keys=[]))
    with pytest.raises(ConfigError, match="STREAMZY_SECRET_KEY"):
        validate_for_start(strong(env="development", secret_key=""))


@pytest.mark.parametrize("origins", ["*", "https://ok.example,*", "chat.example.org"])
def test_wildcard_or_schemeless_origins_are_refused(origins: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="exact origins"):
        Settings(_env_file=None, allowed_origins=origins)  # type: ignore[call-arg]
    monkeypatch.setenv("STREAMZY_ALLOWED_ORIGINS", origins)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)  # type: ignore[call-arg]


def cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("STREAMZY_")}
    base["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "streamzy.cli", *args], cwd=cwd,
                          env={**base, **env}, capture_output=True, text=True, timeout=60,
                          check=False)


@pytest.mark.slow  # runs the CLI as a process
def test_check_config_fails_production_with_a_weak_key(tmp_path: Path) -> None:
    result = cli(["check-config"], tmp_path, STREAMZY_ENV="production",
                 STREAMZY_SECRET_KEY="change-me", STREAMZY_COOKIE_SECURE="true",
                 STREAMZY_PASSWORD_PEPPER=secrets.token_urlsafe(48),
                 STREAMZY_MESSAGE_KEYS=Fernet.generate_key().decode())
    assert result.returncode == 1, result.stderr
    assert "mode: production" in result.stdout
    assert "[FAIL] STREAMZY_SECRET_KEY" in result.stdout
    for name in ("PASSWORD_PEPPER", "MESSAGE_KEYS", "DEBUG", "COOKIE_SECURE", "BCRYPT_ROUNDS"):
        assert f"[PASS] STREAMZY_{name}" in result.stdout
    assert "5 passed, 1 failed" in result.stdout
    assert "change-me" not in result.stdout + result.stderr


@pytest.mark.slow  # runs the CLI as a process
def test_check_config_reads_dot_env_and_passes_a_good_production_config(
        tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "STREAMZY_ENV=production\nSTREAMZY_COOKIE_SECURE=true\n"
        f"STREAMZY_SECRET_KEY={secrets.token_urlsafe(48)}\n"
        f"STREAMZY_PASSWORD_PEPPER={secrets.token_urlsafe(48)}\n"
        f"STREAMZY_MESSAGE_KEYS={Fernet.generate_key().decode()}\n", "utf-8")
    result = cli(["check-config"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[FAIL]" not in result.stdout and "6 passed, 0 failed" in result.stdout


@pytest.mark.slow  # runs the CLI as a process
def test_check_config_in_development_reports_but_only_fails_when_strict(
        tmp_path: Path) -> None:
    lenient = cli(["check-config"], tmp_path)
    assert lenient.returncode == 0 and "[FAIL] STREAMZY_SECRET_KEY" in lenient.stdout
    strict = cli(["check-config", "--strict"], tmp_path)
    assert strict.returncode == 1
    assert not (tmp_path / ".env").exists()  # checking never writes secrets


@pytest.mark.slow  # runs the CLI as a process
def test_gen_key_prints_a_fernet_key(tmp_path: Path) -> None:
    first = cli(["gen-key"], tmp_path)
    second = cli(["gen-key"], tmp_path)
    assert first.returncode == second.returncode == 0
    key = first.stdout.strip()
    assert len(key) == 44 and key != second.stdout.strip()
    fernet = Fernet(key.encode())
    assert fernet.decrypt(fernet.encrypt(b"hello")) == b"hello"


@pytest.mark.parametrize("idle", [60, 120, 299])
def test_an_idle_timeout_near_the_activity_recording_interval_is_refused(
        idle: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Activity is recorded at most every TOUCH_EVERY: an idle timeout of 60 s ended active
    sessions (401) between two recordings."""
    with pytest.raises(ValidationError, match="STREAMZY_SESSION_IDLE_SECONDS") as caught:
        Settings(_env_file=None, session_idle_seconds=idle)  # type: ignore[call-arg]
    assert "300" in str(caught.value)
    monkeypatch.setenv("STREAMZY_SESSION_IDLE_SECONDS", str(idle))
    with pytest.raises(ValidationError, match="STREAMZY_SESSION_IDLE_SECONDS"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_the_minimum_idle_timeout_leaves_room_for_several_activity_recordings() -> None:
    from streamzy.config import MIN_SESSION_IDLE_SECONDS
    from streamzy.guards.sessions import TOUCH_EVERY

    assert MIN_SESSION_IDLE_SECONDS > 2 * TOUCH_EVERY.total_seconds()
    accepted = Settings(_env_file=None, session_idle_seconds=MIN_SESSION_IDLE_SECONDS)  # type: ignore[call-arg]
    assert accepted.session_idle_seconds == 300
