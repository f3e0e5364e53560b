#!/usr/bin/env bash
# Sourced by the other scripts: finds Python >= 3.13 and prepares .venv with Streamzy installed.
# Usage: source scripts/env.sh [extras]   (extras: "" for the server, "dev" for tests)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

find_python() {
  local candidates=()
  [ -n "${STREAMZY_PYTHON:-}" ] && candidates+=("$STREAMZY_PYTHON")
  candidates+=(python3.14 python3.13)
  if command -v pyenv >/dev/null 2>&1; then
    local root; root="$(pyenv root)"
    for dir in "$root"/versions/3.1[3-9]*; do
      [ -x "$dir/bin/python3" ] && candidates+=("$dir/bin/python3")
    done
  fi
  candidates+=(python3)
  for py in "${candidates[@]}"; do
    if command -v "$py" >/dev/null 2>&1 && \
       "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 13) else 1)' 2>/dev/null; then
      command -v "$py"; return 0
    fi
  done
  echo "Streamzy needs Python 3.13 or newer (set STREAMZY_PYTHON to its path)." >&2
  return 1
}

VENV="${STREAMZY_VENV:-$ROOT/.venv}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 13) else 1)'; then
  PY="$(find_python)"
  echo "Creating $VENV with $PY" >&2
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
fi
EXTRAS="${1:-}"
STAMP="$VENV/.streamzy-installed${EXTRAS:+-$EXTRAS}"
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
  "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
  "$VENV/bin/python" -m pip install --quiet -e ".${EXTRAS:+[$EXTRAS]}" >&2
  touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
