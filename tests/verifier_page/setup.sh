#!/usr/bin/env bash
# Install playwright-core (pinned in node/package.json and its lock file) into the cache folder,
# idempotently, for the verifier page's browser test; Chromium itself is Debian's `chromium`.
# Prints the folder holding node_modules, run.mjs (the tests) and bench.mjs (scripts/bench-verify).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${MANDATE_CACHE:-$HOME/.cache/mandate}"
NODE_DIR="$CACHE/verifier-page-node"
mkdir -p "$NODE_DIR"
exec 9>"$CACHE/verifier-page-setup.lock"
flock 9
want="$(cat "$HERE/node/package.json" "$HERE/node/package-lock.json" 2>/dev/null | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$NODE_DIR/.stamp" 2>/dev/null)" != "$want" ]; then
  cp "$HERE/node/package.json" "$NODE_DIR/"
  if [ -f "$HERE/node/package-lock.json" ]; then
    cp "$HERE/node/package-lock.json" "$NODE_DIR/"
    (cd "$NODE_DIR" && npm ci --silent --no-audit --no-fund >&2)
  else
    (cd "$NODE_DIR" && npm install --silent --no-audit --no-fund >&2)
  fi
  echo "$want" >"$NODE_DIR/.stamp"
fi
cp "$HERE/run.mjs" "$HERE/bench.mjs" "$NODE_DIR/"
echo "$NODE_DIR"
