#!/usr/bin/env bash
# CI: build the sdist and the wheel, install the wheel into a fresh virtualenv outside the
# checkout, run `streamzy init` and `streamzy serve` there, and fetch /healthz, a page and a
# static file. Fails (non-zero, with the reason) on any step: this is what an operator who
# runs `pip install streamzy-*.whl` gets. Usage: scripts/check-wheel.sh [--keep]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh" dev   # a Python >= 3.13 with `build` (the dev extras)
PY="$(command -v python)"
WAIT_SECONDS="${CHECK_WHEEL_WAIT_SECONDS:-60}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/streamzy-wheel.XXXXXX")"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  if [ "${1:-}" != "--keep" ]; then rm -rf "$WORK"; fi
}
trap 'cleanup "${KEEP:-}"' EXIT
KEEP="${1:-}"
fail() { echo "check-wheel: FAIL: $*" >&2; exit 1; }
step() { echo "check-wheel: $*"; }

step "building the sdist and the wheel (the wheel is built from the sdist)"
"$PY" -m build --outdir "$WORK/dist" "$ROOT" >"$WORK/build.log" 2>&1 \
  || { tail -30 "$WORK/build.log" >&2; fail "python -m build failed"; }
WHEEL="$(ls "$WORK"/dist/streamzy-*-py3-none-any.whl 2>/dev/null | head -1)"
SDIST="$(ls "$WORK"/dist/streamzy-*.tar.gz 2>/dev/null | head -1)"
[ -n "$WHEEL" ] && [ -n "$SDIST" ] || fail "no wheel or sdist in $WORK/dist"

# What the release must carry, read from the archives themselves.
"$PY" - "$WHEEL" "$SDIST" <<'PYEOF' || fail "the archives lack files (above)"
import sys, tarfile, zipfile
wheel, sdist = sys.argv[1], sys.argv[2]
names = set(zipfile.ZipFile(wheel).namelist())
tar = {n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n}
want_wheel = ["streamzy/_assets/templates/base.html", "streamzy/_assets/templates/error.html",
              "streamzy/_assets/static/app.css", "streamzy/_assets/static/vendor/socket.io.min.js",
              "streamzy/_assets/hypercorn.toml"]
want_sdist = ["templates/base.html", "static/app.css", "hypercorn.toml", "LICENSE",
              "CHANGELOG.md", "README.md", "setup.py"]
missing = [f"wheel: {n}" for n in want_wheel if n not in names]
missing += [f"sdist: {n}" for n in want_sdist if n not in tar]
if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
    missing.append("wheel: the LICENSE in .dist-info")
for line in missing:
    print(f"  missing {line}", file=sys.stderr)
sys.exit(1 if missing else 0)
PYEOF

step "installing $(basename "$WHEEL") into a fresh virtualenv in $WORK"
"$PY" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$WHEEL" \
  >"$WORK/pip.log" 2>&1 || { grep -v "is ignored" "$WORK/pip.log" | tail -30 >&2; fail "pip install failed"; }

# The installed server runs in an empty directory with a clean environment: nothing from the
# checkout (PYTHONPATH, .env, hypercorn.toml, templates) or from the caller's STREAMZY_* can help.
mkdir "$WORK/run"
cd "$WORK/run"
CLEAN_ENV=(env -i PATH="$WORK/venv/bin:/usr/bin:/bin" HOME="$WORK" LANG=C.UTF-8
           STREAMZY_ENV=development STREAMZY_AUDIT_LOG_PATH="$WORK/run/logs/audit.log"
           STREAMZY_LOG_FORMAT=json)
run() { "${CLEAN_ENV[@]}" "$@"; }
VERSION="$(run streamzy --version)" || fail "streamzy --version failed"
step "installed: $VERSION"
run python -c 'import pathlib, sys, streamzy
sys.exit(0 if pathlib.Path(streamzy.__file__).is_relative_to(sys.prefix) else 1)' \
  || fail "streamzy was not imported from the fresh virtualenv"

step "streamzy init"
run streamzy init >"$WORK/init.log" 2>&1 || { cat "$WORK/init.log" >&2; fail "streamzy init failed"; }
grep -q "First admin created" "$WORK/init.log" || { cat "$WORK/init.log" >&2; fail "init made no admin"; }

PORT="$("$WORK/venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
step "streamzy serve on 127.0.0.1:$PORT"
# Not through run(): a function put in the background is a subshell, and its pid is not the
# server's (SIGTERM would end the subshell and orphan the server). env execs streamzy.
"${CLEAN_ENV[@]}" streamzy serve --host 127.0.0.1 --port "$PORT" >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!

# Fetch with the fresh virtualenv's Python (no curl needed): status, then checks on the body.
fetch() {  # fetch PATH EXPECTED_STATUS NEEDLE
  "$WORK/venv/bin/python" - "http://127.0.0.1:$PORT$1" "$2" "$3" <<'PYEOF'
import sys, urllib.error, urllib.request
url, status, needle = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    with urllib.request.urlopen(url, timeout=10) as answer:
        code, body = answer.status, answer.read().decode("utf-8", "replace")
except urllib.error.HTTPError as exc:
    code, body = exc.code, exc.read().decode("utf-8", "replace")
if code != status or needle not in body:
    print(f"  GET {url}: {code} (wanted {status} with {needle!r}); body starts {body[:300]!r}",
          file=sys.stderr)
    sys.exit(1)
PYEOF
}

deadline=$(( $(date +%s) + WAIT_SECONDS ))
until fetch /healthz 200 "" 2>/dev/null; do
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/serve.log" >&2; fail "the server exited"; }
  [ "$(date +%s)" -lt "$deadline" ] || { cat "$WORK/serve.log" >&2; fail "no /healthz within ${WAIT_SECONDS}s"; }
  sleep 0.2
done
step "GET /healthz: 200"
fetch /login 200 '<form' || { tail -30 "$WORK/serve.log" >&2; fail "GET /login"; }
step "GET /login: 200 with the sign-in form"
fetch /static/app.css 200 '{' || { tail -30 "$WORK/serve.log" >&2; fail "GET /static/app.css"; }
step "GET /static/app.css: 200"

kill -TERM "$SERVER_PID"
for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$SERVER_PID" 2>/dev/null; then fail "the server did not stop within 10 s of SIGTERM"; fi
wait "$SERVER_PID" || fail "the server exited with status $? after SIGTERM"
SERVER_PID=""
# The shipped hypercorn.toml's logging: every log line JSON, one access line per request.
"$WORK/venv/bin/python" - "$WORK/serve.log" <<'PYEOF' || fail "the server's log lines (above)"
import json, sys
lines = [line for line in open(sys.argv[1], encoding="utf-8") if line.startswith("{")]
parsed = [json.loads(line) for line in lines]
paths = [p["access"]["path"] for p in parsed if p.get("logger") == "hypercorn.access"]
if not {"/login", "/static/app.css"} <= set(paths):
    print(f"  no JSON access lines for /login and /static/app.css: {paths}", file=sys.stderr)
    sys.exit(1)
PYEOF
step "the log is JSON lines, with an access line for each page fetched"
step "OK: the wheel installs, initialises, serves a page and a static file, and stops"
