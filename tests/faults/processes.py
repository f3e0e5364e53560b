"""Real processes for fault tests: Streamzy under Hypercorn, a private PostgreSQL, Redis."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import update

from streamzy.config import Settings
from streamzy.guards.context import SYSTEM
from streamzy.storage.models import User
from streamzy.wiring import Services, build_services
from tests.conftest import REQUIRE_SERVICES, free_port
from tests.waiting import process_alive, wait_until, wait_until_healthy

ROOT = Path(__file__).resolve().parents[2]


def secrets_env() -> dict[str, str]:
    return {"STREAMZY_SECRET_KEY": "fault-secret-" + "k7" * 20,
            "STREAMZY_PASSWORD_PEPPER": "fault-pepper-" + "p6" * 20,
            "STREAMZY_MESSAGE_KEYS": Fernet.generate_key().decode(),
            "STREAMZY_BCRYPT_ROUNDS": "4"}


class StreamzyProcess:
    """``hypercorn streamzy.asgi:app`` in its own process group (so kill -9 takes it all)."""

    def __init__(self, cwd: Path, env: dict[str, str], port: int | None = None) -> None:
        self.cwd = cwd
        self.env = env
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("STREAMZY_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hypercorn", "-c", str(ROOT / "hypercorn.toml"),  # as shipped
             "--bind", f"127.0.0.1:{self.port}", "streamzy.asgi:app"],
            cwd=self.cwd, env={**base, "PYTHONPATH": str(ROOT), **self.env},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        await self.wait_healthy()

    async def wait_healthy(self) -> None:
        assert self.proc is not None
        await wait_until_healthy(self.url, alive=process_alive(self.proc, "streamzy"))

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def admin_services(env: dict[str, str]) -> Services:
    """Services on the same database as the processes, for setting up users and rooms."""
    return build_services(Settings(
        _env_file=None, database_url=env["STREAMZY_DATABASE_URL"],
        secret_key=env["STREAMZY_SECRET_KEY"], password_pepper=env["STREAMZY_PASSWORD_PEPPER"],
        message_keys=env["STREAMZY_MESSAGE_KEYS"], bcrypt_rounds=4, audit_log_path=""))


async def user_session(services: Services, name: str) -> str:
    user, _ = await services.accounts.create_user(name, name.title(), "")
    async with services.db.unit() as db:
        await db.execute(update(User).where(User.id == user.id)
                         .values(must_change_password=False))
    token, _ = await services.sessions.issue(user.id, SYSTEM)
    return token


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


class PrivatePostgres:
    """A throw-away PostgreSQL cluster this test owns, so it may stop and start it."""

    def __init__(self) -> None:
        bindir = _pg_bin()
        if bindir is None or shutil.which("runuser") is None:
            message = "PostgreSQL server binaries (initdb) not installed"
            if REQUIRE_SERVICES:
                pytest.fail(message)
            pytest.skip(message)
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="streamzy-pg-"))
        self.port = free_port()
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_postgres, *args], check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        if self.as_postgres:
            shutil.chown(self.dir, "postgres")
        self._run(str(self.bindir / "initdb"), "-D", str(self.dir / "data"), "-U", "postgres",
                  "--auth=trust", "-N")

    def start(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.dir / "data"), "-w", "-l",
                  str(self.dir / "log"), "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off",
                  "start")

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate",
                  "-w", "stop")

    def processes(self) -> list[int]:
        """The postmaster and every backend it forked (all of them serve connections)."""
        postmaster = int((self.dir / "data" / "postmaster.pid").read_text().split()[0])
        children = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
                    and _parent_of(p) == postmaster]
        return [postmaster, *children]

    def pause(self) -> None:
        """Hang, not stop: connections stay open and nothing answers (SIGSTOP)."""
        for pid in self.processes():
            os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        for pid in self.processes():
            os.kill(pid, signal.SIGCONT)

    def destroy(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def _parent_of(proc: Path) -> int:
    try:
        stat = (proc / "stat").read_text()
    except OSError:
        return -1
    return int(stat[stat.rindex(")") + 2:].split()[1])


class PrivateRedis:
    """A redis-server this test owns, on its own port."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            message = "redis-server not installed"
            if REQUIRE_SERVICES:
                pytest.fail(message)
            pytest.skip(message)
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "--port", str(self.port), "--bind",
                                      "127.0.0.1", "--save", "", "--appendonly", "no"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        from redis.asyncio import Redis
        client = Redis.from_url(self.url)

        async def answers() -> bool:
            try:
                return bool(await client.ping())
            except Exception:  # not listening yet
                return False

        try:
            await wait_until(answers, what="redis-server to answer")
        finally:
            await client.aclose()

    def stop(self) -> None:
        if self.proc is not None:
            self.resume()  # a stopped process cannot die until it runs again
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def pause(self) -> None:
        """Hang, not stop: connections stay open and nothing answers (SIGSTOP)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGCONT)


__all__ = ["Any", "PrivatePostgres", "PrivateRedis", "StreamzyProcess", "admin_services",
           "secrets_env", "user_session"]
