"""Password hashing, checking and generation.

bcrypt only reads 72 bytes and bcrypt 5 raises past that, so every password is first
reduced to a fixed 44-byte value: base64(HMAC-SHA256(pepper, utf8(password))). Nothing
is ever truncated, and the pepper keeps a stolen database from being brute-forced alone.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import secrets
import string
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from importlib import resources
from typing import Any

import bcrypt

from streamzy.metrics import Metrics

MAX_PASSWORD_CHARS = 4096
GENERATED_LENGTH = 16


def _prehash(password: str, pepper: bytes) -> bytes:
    digest = hmac.new(pepper, password.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest)


def _lower_priority() -> None:
    """bcrypt threads yield the CPU to the event loop (Linux: per-thread nice value)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):  # not Linux, or not permitted: keep going
        pass


# A login storm must not stall chat: at most (cores - 1) bcrypt computations at a time, at a
# lower priority, so one core stays with the event loop. Further logins queue here.
_BCRYPT_POOL = ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 2) - 1),
                                  thread_name_prefix="bcrypt", initializer=_lower_priority)


async def _in_pool(func: Any, *args: Any, metrics: Metrics | None = None) -> Any:
    if metrics is None or not metrics.enabled:
        return await asyncio.get_running_loop().run_in_executor(_BCRYPT_POOL, func, *args)
    submitted = time.perf_counter()

    def timed() -> Any:
        # In the worker: the time spent queued behind other hashes (a login storm's cost).
        metrics.bcrypt_wait(time.perf_counter() - submitted)
        return func(*args)

    return await asyncio.get_running_loop().run_in_executor(_BCRYPT_POOL, timed)


class PasswordHasher:
    """bcrypt over a peppered pre-hash, always run in a worker thread."""

    def __init__(self, pepper: str, rounds: int = 12, *,
                 metrics: Metrics | None = None) -> None:
        self._pepper = pepper.encode("utf-8")
        self.rounds = rounds
        self._metrics = metrics
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        prehashed = _prehash(password, self._pepper)
        salt = bcrypt.gensalt(self.rounds)
        hashed = await _in_pool(bcrypt.hashpw, prehashed, salt, metrics=self._metrics)
        return str(hashed.decode("ascii"))

    async def verify(self, password: str, hashed: str | None) -> bool:
        """Check ``password``; with no hash (unknown user) spend the same time and fail."""
        if not hashed:
            hashed = await self._dummy_hash()
            await _in_pool(bcrypt.checkpw, _prehash(password, self._pepper),
                           hashed.encode("ascii"), metrics=self._metrics)
            return False
        try:
            return bool(await _in_pool(
                bcrypt.checkpw, _prehash(password, self._pepper), hashed.encode("ascii"),
                metrics=self._metrics))
        except ValueError:  # a malformed stored hash never matches
            return False

    def fingerprint(self, text: str) -> str:
        """A short keyed digest of ``text``: equal inputs match, the text stays unknown."""
        return hmac.new(self._pepper, b"name:" + text.encode("utf-8"),
                        hashlib.sha256).hexdigest()[:16]

    async def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = await self.hash(secrets.token_urlsafe(16))
        return self._dummy


# One-time passwords are read out loud and typed from a screen: no look-alikes (0/O/o,
# 1/l/I, and 5/S, 2/Z, 8/B pairs are kept apart by dropping 0, 1, O, o, I, l) and only a few
# punctuation signs that no font confuses with a letter or with each other.
READABLE_UPPER = "".join(c for c in string.ascii_uppercase if c not in "IO")
READABLE_LOWER = "".join(c for c in string.ascii_lowercase if c not in "lo")
READABLE_DIGITS = "23456789"
READABLE_SYMBOLS = "#%+=?@"


def generate_password(length: int = GENERATED_LENGTH) -> str:
    """A random one-time password people can read out: at least one upper, lower, digit
    and symbol, from an alphabet without look-alikes (about 95 bits at 16 characters)."""
    alphabet = READABLE_UPPER + READABLE_LOWER + READABLE_DIGITS + READABLE_SYMBOLS
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(length))
        if (any(c.isupper() for c in candidate) and any(c.islower() for c in candidate)
                and any(c.isdigit() for c in candidate)
                and any(c in READABLE_SYMBOLS for c in candidate)):
            return candidate


@cache
def common_passwords() -> frozenset[str]:
    text = resources.files("streamzy.data").joinpath("common-passwords.txt").read_text("utf-8")
    return frozenset(line.strip().casefold() for line in text.splitlines() if line.strip())


def password_problems(password: str, *, min_length: int, username: str = "") -> list[str]:
    """Why ``password`` may not be chosen; empty when it is acceptable."""
    problems = []
    if len(password) < min_length:
        problems.append(f"Use at least {min_length} characters.")
    if len(password) > MAX_PASSWORD_CHARS:
        problems.append(f"Use at most {MAX_PASSWORD_CHARS} characters.")
    folded = password.casefold()
    if folded in common_passwords() or folded.rstrip("0123456789!") in common_passwords():
        problems.append("This password is on the list of commonly used passwords.")
    if username and username.casefold() in folded:
        problems.append("The password must not contain your username.")
    if len(set(password)) < 5:
        problems.append("Use more different characters.")
    return problems
