"""The release as an operator installs it: scripts/check-wheel.sh builds the sdist and the
wheel, installs the wheel into a fresh virtualenv outside the checkout, runs ``streamzy
init`` and ``streamzy serve`` there and fetches a page and a static file (CI also runs the
script on its own, before the suites). The wheel once held neither templates nor static
files, so an installed server answered 500 on every page."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check-wheel.sh"


@pytest.mark.skipif(os.environ.get("STREAMZY_TEST_BACKEND") == "postgres",
                    reason="the installed server runs on its own SQLite database: the "
                           "SQLite run of the suite covers it")
def test_the_wheel_installs_and_serves_pages_and_static_files(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run(["bash", str(SCRIPT)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=900, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    for step in ("GET /healthz: 200", "GET /login: 200", "GET /static/app.css: 200",
                 "OK: the wheel installs"):
        assert step in done.stdout, output[-4000:]
    assert list(tmp_path.iterdir()) == [], "the script left its work directory behind"


def test_the_script_fails_with_a_reason_when_a_step_fails(tmp_path: Path) -> None:
    """A build that cannot run (no such source) ends non-zero and says which step failed."""
    copy = tmp_path / "scripts"
    copy.mkdir()
    (copy / "check-wheel.sh").write_text(SCRIPT.read_text("utf-8"), "utf-8")
    # env.sh finds the interpreter; an empty checkout has no pyproject.toml to build.
    (copy / "env.sh").write_text(f'export PATH="{Path(sys.executable).parent}:$PATH"\n', "utf-8")
    done = subprocess.run(["bash", str(copy / "check-wheel.sh")], cwd=tmp_path,
                          env={**os.environ, "TMPDIR": str(tmp_path)}, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode != 0
    assert "check-wheel: FAIL: python -m build failed" in done.stderr
