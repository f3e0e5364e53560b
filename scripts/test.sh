#!/usr/bin/env bash
# Run the test suite (and ruff). Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/env.sh" dev
ruff check .
exec python -m pytest "$@"
