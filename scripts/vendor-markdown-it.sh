#!/usr/bin/env bash
# Vendor the markdown-it browser build from its npm package into static/vendor/.
#
#   scripts/vendor-markdown-it.sh            fetch the newest markdown-it 15.x
#   scripts/vendor-markdown-it.sh 15.0.3     fetch an exact version
#   scripts/vendor-markdown-it.sh --check    verify static/vendor against MARKDOWN-IT-VERSION.txt
#
# static/markdown.js turns markdown-it's tokens into DOM nodes for message bodies; the page
# loads /static/vendor/markdown-it.min.js from our own origin (CSP script-src 'self'),
# never from a CDN. npm verifies the tarball against the registry's integrity hash; we
# record that hash, the version and the SHA-256 of the file we ship.
#
# The UMD build bundles markdown-it's own dependencies (linkify-it, mdurl, uc.micro,
# punycode.js, entities). Their licences ship with it, so the licence file carries each
# bundled package's LICENSE after markdown-it's (the packages are read from the build's
# source map, their versions resolved from markdown-it's dependency ranges).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/static/vendor"
RECORD="$DEST/MARKDOWN-IT-VERSION.txt"
FILE="markdown-it.min.js"

sha256() { sha256sum "$1" | cut -d' ' -f1; }

if [ "${1:-}" = "--check" ]; then
  want="$(sed -n 's/^sha256: //p' "$RECORD")"
  have="$(sha256 "$DEST/$FILE")"
  if [ -z "$want" ] || [ "$want" != "$have" ]; then
    echo "static/vendor/$FILE does not match $RECORD ($have != $want)" >&2
    exit 1
  fi
  echo "$FILE matches $(sed -n 's/^version: //p' "$RECORD") ($have)"
  exit 0
fi

SPEC="markdown-it@${1:-15}"
command -v npm >/dev/null || { echo "npm is required" >&2; exit 1; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

field() { node -e 'const p=require(process.argv[1])[0]; process.stdout.write(p[process.argv[2]])' "$1" "$2"; }

# --ignore-scripts: we only want the published files, never run package scripts.
(cd "$WORK" && npm pack "$SPEC" --ignore-scripts --json --silent > pack.json)
TARBALL="$(field "$WORK/pack.json" filename)"
VERSION="$(field "$WORK/pack.json" version)"
INTEGRITY="$(field "$WORK/pack.json" integrity)"
tar -xzf "$WORK/$TARBALL" -C "$WORK"

SRC="$WORK/package/dist/browser/markdown-it.umd.min.js"
[ -s "$SRC" ] || { echo "$SPEC has no dist/browser/markdown-it.umd.min.js" >&2; exit 1; }
# The page's CSP has no 'unsafe-eval': a build that needs it would only fail at run time.
if grep -qE '\beval\(|new Function\(' "$SRC"; then
  echo "$SPEC's browser build calls eval or new Function: refused" >&2
  exit 1
fi

# Which packages the build bundles, and the range markdown-it asks for each.
BUNDLED="$(node -e '
  const fs = require("fs");
  const [map, pkg] = process.argv.slice(1).map((f) => JSON.parse(fs.readFileSync(f, "utf8")));
  const names = new Set();
  for (const source of map.sources) {
    const m = source.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
    if (m) names.add(m[1]);
  }
  for (const name of [...names].sort()) {
    const range = (pkg.dependencies || {})[name];
    if (!range) { console.error(`bundled ${name} is not a dependency`); process.exit(1); }
    console.log(`${name}@${range}`);
  }' "$SRC.map" "$WORK/package/package.json")"

LICENSE_OUT="$WORK/LICENSE.txt"
{
  echo "markdown-it $VERSION"
  echo
  cat "$WORK/package/LICENSE"
} > "$LICENSE_OUT"
BUNDLES=""
for spec in $BUNDLED; do
  mkdir -p "$WORK/dep" && rm -rf "$WORK/dep/"*
  (cd "$WORK/dep" && npm pack "$spec" --ignore-scripts --json --silent > pack.json)
  dep_tar="$(field "$WORK/dep/pack.json" filename)"
  dep_name="$(field "$WORK/dep/pack.json" name)"
  dep_version="$(field "$WORK/dep/pack.json" version)"
  tar -xzf "$WORK/dep/$dep_tar" -C "$WORK/dep"
  license="$(find "$WORK/dep/package" -maxdepth 1 -iname 'LICEN[CS]E*' | head -n1)"
  [ -n "$license" ] || { echo "$spec has no LICENSE file" >&2; exit 1; }
  {
    echo
    echo "----------------------------------------------------------------------"
    echo "Bundled in the browser build: $dep_name $dep_version"
    echo "(licence $(node -e 'process.stdout.write(String(require(process.argv[1]).license))' \
        "$WORK/dep/package/package.json"))"
    echo
    cat "$license"
  } >> "$LICENSE_OUT"
  BUNDLES="$BUNDLES${BUNDLES:+, }$dep_name@$dep_version"
done

mkdir -p "$DEST"
# Drop the sourceMappingURL comment: we do not ship the map, and a dangling reference
# only produces a 404 in developer tools.
sed '/^\/\/# sourceMappingURL=/d' "$SRC" > "$DEST/$FILE"
cp "$LICENSE_OUT" "$DEST/MARKDOWN-IT-LICENSE.txt"

cat > "$RECORD" <<EOF
package: markdown-it
version: $VERSION
file: dist/browser/markdown-it.umd.min.js (sourceMappingURL line removed)
bundles: $BUNDLES
npm-integrity: $INTEGRITY
sha256: $(sha256 "$DEST/$FILE")
fetched: $(date -u +%Y-%m-%dT%H:%M:%SZ)
refresh: scripts/vendor-markdown-it.sh [version]
EOF
echo "vendored markdown-it $VERSION into static/vendor/"
cat "$RECORD"
