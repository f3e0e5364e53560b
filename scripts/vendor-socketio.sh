#!/usr/bin/env bash
# Vendor the official Socket.IO browser client from its npm package into static/vendor/.
#
#   scripts/vendor-socketio.sh           fetch the newest socket.io-client 4.x
#   scripts/vendor-socketio.sh 4.8.1     fetch an exact version
#   scripts/vendor-socketio.sh --check   verify static/vendor against SOCKETIO-VERSION.txt
#
# The page loads /static/vendor/socket.io.min.js from our own origin (CSP script-src 'self');
# nothing is ever loaded from a CDN. npm verifies the tarball against the registry's
# integrity hash; we record that hash, the version and the SHA-256 of the file we ship.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/static/vendor"
RECORD="$DEST/SOCKETIO-VERSION.txt"

sha256() { sha256sum "$1" | cut -d' ' -f1; }

if [ "${1:-}" = "--check" ]; then
  want="$(sed -n 's/^sha256: //p' "$RECORD")"
  have="$(sha256 "$DEST/socket.io.min.js")"
  if [ "$want" != "$have" ]; then
    echo "static/vendor/socket.io.min.js does not match $RECORD ($have != $want)" >&2
    exit 1
  fi
  echo "socket.io.min.js matches $(sed -n 's/^version: //p' "$RECORD") ($have)"
  exit 0
fi

SPEC="socket.io-client@${1:-4}"
command -v npm >/dev/null || { echo "npm is required" >&2; exit 1; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# --ignore-scripts: we only want the published files, never run package scripts.
(cd "$WORK" && npm pack "$SPEC" --ignore-scripts --json --silent > pack.json)
TARBALL="$(node -e 'const p=require(process.argv[1])[0]; process.stdout.write(p.filename)' "$WORK/pack.json")"
VERSION="$(node -e 'const p=require(process.argv[1])[0]; process.stdout.write(p.version)' "$WORK/pack.json")"
INTEGRITY="$(node -e 'const p=require(process.argv[1])[0]; process.stdout.write(p.integrity)' "$WORK/pack.json")"
tar -xzf "$WORK/$TARBALL" -C "$WORK"

SRC="$WORK/package/dist/socket.io.min.js"
[ -s "$SRC" ] || { echo "$SPEC has no dist/socket.io.min.js" >&2; exit 1; }
mkdir -p "$DEST"
# Drop the sourceMappingURL comment: we do not ship the map, and a dangling reference
# only produces a 404 in developer tools.
sed '/^\/\/# sourceMappingURL=/d' "$SRC" > "$DEST/socket.io.min.js"
cp "$WORK/package/LICENSE" "$DEST/SOCKETIO-LICENSE.txt"

cat > "$RECORD" <<EOF
package: socket.io-client
version: $VERSION
file: dist/socket.io.min.js (sourceMappingURL line removed)
npm-integrity: $INTEGRITY
sha256: $(sha256 "$DEST/socket.io.min.js")
fetched: $(date -u +%Y-%m-%dT%H:%M:%SZ)
refresh: scripts/vendor-socketio.sh [version]
EOF
echo "vendored socket.io-client $VERSION into static/vendor/"
cat "$RECORD"
