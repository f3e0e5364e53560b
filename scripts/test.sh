#!/usr/bin/env bash
# Run the test suite (and ruff). Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/env.sh" dev
ruff check .
# Node packages the tests drive: the official Socket.IO client (default-options tests) and
# the benchmark load generator (its smoke test). Pinned by their package-lock.json files.
if command -v npm >/dev/null 2>&1; then
  for dir in tests/clients/node benchmarks/node; do
    [ -d "$dir/node_modules" ] || (cd "$dir" && npm ci --silent --no-audit --no-fund) \
      || echo "npm ci failed in $dir: the tests that need it will skip" >&2
  done
fi
exec python -m pytest "$@"
