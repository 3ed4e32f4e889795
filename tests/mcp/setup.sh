#!/usr/bin/env bash
# Install the real MCP parts the gateway tests use, idempotently and into the cache folder:
# the reference servers and the TypeScript SDK (pinned in node/package.json and its lock file)
# under $MANDATE_CACHE/mcp-node, and the Python `mcp` client in $MANDATE_CACHE/mcp-venv.
# Fast when present; safe to run concurrently (a lock serialises installs). Prints two lines:
# the node folder (holding node_modules) and the venv's python.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${MANDATE_CACHE:-$HOME/.cache/mandate}"
NODE_DIR="$CACHE/mcp-node"
VENV="$CACHE/mcp-venv"
mkdir -p "$CACHE" "$NODE_DIR"
exec 9>"$CACHE/mcp-setup.lock"
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
want_py="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$want_py" ]; then
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt" >&2
  echo "$want_py" >"$VENV/.requirements.sha256"
fi
# The test client resolves the SDK from the cache folder's node_modules, so it runs from there.
cp "$HERE/client.mjs" "$NODE_DIR/client.mjs"
echo "$NODE_DIR"
echo "$VENV/bin/python"
