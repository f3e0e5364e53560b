"""PLACEHOLDER on branch id-stepup: at the merge, take id-totp's version of this file whole.

It only states the interface the identity contract fixes (/work/briefs/identity.md), so
the step-up page can call ``check_code`` and ``status`` before TOTP and recovery codes
exist on this branch. Here nobody has a code: every check answers ``no_factor``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CodeOutcome:
    ok: bool
    method: str  # "totp" | "recovery" | ""
    reason: str  # ok, wrong_code, replayed, locked, malformed, no_factor


@dataclass(frozen=True)
class FactorStatus:
    totp: bool
    recovery_codes_left: int
    passkeys: int


class SecondFactors:
    async def check_code(self, user_id: int, code: str, info: Any, *,
                         purpose: str) -> CodeOutcome:
        """Check a TOTP or recovery code (id-totp: audits and counts toward the lockout)."""
        return CodeOutcome(False, "", "no_factor")

    async def status(self, user_id: int) -> FactorStatus:
        return FactorStatus(totp=False, recovery_codes_left=0, passkeys=0)
