#!/usr/bin/env bash
# Run the test suite (and ruff). Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/env.sh" dev
ruff check .
# The official Node Socket.IO client, for the tests that drive it with default options.
if command -v npm >/dev/null 2>&1 && [ ! -d tests/clients/node/node_modules ]; then
  (cd tests/clients/node && npm ci --silent --no-audit --no-fund) \
    || echo "npm ci failed in tests/clients/node: the Node client tests will skip" >&2
fi
exec python -m pytest "$@"
