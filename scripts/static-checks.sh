#!/usr/bin/env bash
# Static security checks, offline: bandit over streamzy/ and semgrep with the repository's
# own rules (.semgrep/streamzy.yml, no registry rules, no metrics). Run by the test suite
# (tests/test_static_checks.py), so CI runs them; also runnable alone.
# The scanners live in their own virtualenv (.venv-tools, from scripts/static-checks.txt).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TOOLS="${STREAMZY_TOOLS_VENV:-$ROOT/.venv-tools}"
# The scanners must parse Streamzy's own Python (3.13 syntax: PEP 695 generics); an older
# interpreter skips such files as "syntax errors" and so scans less than it claims.
PY="${STREAMZY_PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY=python3
new_enough() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 13) else 1)'; }
if ! new_enough "$PY"; then
  echo "static checks need Python 3.13+ (set STREAMZY_PYTHON, or run scripts/test.sh first)" >&2
  exit 2
fi
if [ ! -x "$TOOLS/bin/python" ] || ! new_enough "$TOOLS/bin/python"; then
  rm -rf "$TOOLS"
  "$PY" -m venv "$TOOLS"
fi
STAMP="$TOOLS/.installed"
if [ ! -f "$STAMP" ] || [ scripts/static-checks.txt -nt "$STAMP" ]; then
  "$TOOLS/bin/python" -m pip install --quiet --upgrade pip >&2
  "$TOOLS/bin/python" -m pip install --quiet -r scripts/static-checks.txt >&2
  touch "$STAMP"
fi
if [ "${1:-}" = "--install-only" ]; then
  return 0 2>/dev/null || exit 0
fi

echo "== bandit =="
# Settings in pyproject.toml [tool.bandit]; a finding that is right in its place carries
# `# nosec Bxxx` on its line with the reason (tests/test_static_checks.py checks both).
"$TOOLS/bin/bandit" -q -c pyproject.toml -r streamzy

echo "== semgrep =="
export SEMGREP_SEND_METRICS=off SEMGREP_ENABLE_VERSION_CHECK=0
"$TOOLS/bin/semgrep" scan --metrics=off --disable-version-check --oss-only --error \
  --config .semgrep/streamzy.yml streamzy templates scripts benchmarks
