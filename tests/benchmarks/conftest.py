"""Registers the ``slow`` mark here, beside the only tests that use it so far."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: starts real servers (deselect with -m 'not slow')")
