#!/usr/bin/env bash
# Set up and run Streamzy on the embedded default (SQLite, dev keys in .env) at 127.0.0.1:8000.
# First run: generates keys into .env, migrates, creates the first admin and prints its
# one-time password once.
set -euo pipefail
source "$(dirname "$0")/env.sh" ""
exec streamzy serve "$@"
