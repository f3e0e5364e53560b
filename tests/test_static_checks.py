"""Static security checks run as part of the suite (so CI runs them): bandit over
streamzy/ and semgrep with the repository's own rules, offline. The rules are tested on
examples of what they are for, and every suppression must say why."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_SERVICES, ROOT

TOOLS = Path(os.environ.get("STREAMZY_TOOLS_VENV", ROOT / ".venv-tools"))
EXAMPLES = ROOT / "tests" / "static_checks"
RULES = ROOT / ".semgrep" / "streamzy.yml"
SUPPRESSION = re.compile(r"#\s*(nosec|nosemgrep)\b(.*)$")


@pytest.fixture(scope="module")
def tools() -> Path:
    """The scanners' own virtualenv, installed (or rebuilt on an interpreter older than the
    code's) by scripts/static-checks.sh; quick when it is already right."""
    setup = subprocess.run(
        ["bash", "scripts/static-checks.sh", "--install-only"], cwd=ROOT,
        capture_output=True, text=True, timeout=900, check=False)
    if setup.returncode != 0:
        message = f"cannot install bandit/semgrep: {setup.stderr[-2000:]}"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    return TOOLS / "bin"


def semgrep(tools: Path, *targets: str, json_out: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SEMGREP_SEND_METRICS": "off", "SEMGREP_ENABLE_VERSION_CHECK": "0"}
    command = [str(tools / "semgrep"), "scan", "--metrics=off", "--disable-version-check",
               "--oss-only", "--config", str(RULES), *(["--json"] if json_out else ["--error"]),
               *targets]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=env, check=False)


def test_bandit_finds_nothing_in_streamzy(tools: Path) -> None:
    done = subprocess.run([str(tools / "bandit"), "-c", "pyproject.toml", "-r", "streamzy"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    # a file bandit cannot parse is a file it did not scan (an interpreter older than 3.13)
    assert "Files skipped (0)" in done.stdout + done.stderr, done.stdout[-3000:]


def test_semgrep_finds_nothing(tools: Path) -> None:
    done = semgrep(tools, "streamzy", "templates", "scripts", "benchmarks")
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-3000:]


def test_each_rule_flags_what_it_is_for(tools: Path) -> None:
    done = semgrep(tools, str(EXAMPLES / "hostile_examples.py"),
                   str(EXAMPLES / "templates" / "hostile_example.html"), json_out=True)
    report = json.loads(done.stdout)
    assert not report["errors"], report["errors"]
    found = {(Path(r["path"]).name, r["start"]["line"], r["check_id"].rsplit(".", 1)[-1])
             for r in report["results"]}
    expected = set()
    for path in (EXAMPLES / "hostile_examples.py", EXAMPLES / "templates" / "hostile_example.html"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = re.search(r"expect: ([\w-]+)", line)
            if match:
                expected.add((path.name, number, match.group(1)))
    assert found == expected
    ids = set(re.findall(r"^  - id: ([\w-]+)", RULES.read_text(), re.MULTILINE))
    assert {rule for _, _, rule in expected} == ids  # every rule has an example


def test_every_suppression_says_why() -> None:
    """A `# nosec` or `# nosemgrep` names what it silences and why, on its line."""
    bare = []
    for path in [*ROOT.joinpath("streamzy").rglob("*.py"), *ROOT.joinpath("templates").rglob("*.html"),
                 *ROOT.joinpath("scripts").rglob("*.py"), *ROOT.joinpath("benchmarks").rglob("*.py")]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = SUPPRESSION.search(line)
            if not match:
                continue
            names_rule = re.match(r"[:\s]+(B\d{3}|[\w-]+)", match.group(2))
            has_reason = " - " in line[line.index("#"):]
            if not (names_rule and has_reason):
                bare.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert bare == []
