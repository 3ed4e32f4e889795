#!/usr/bin/env bash
# Install what the interop tests need, idempotently: a Python venv (authlib, PyJWT) under the
# cache folder, and the Node packages pinned by node/package-lock.json. Prints the venv's
# python. Safe to run concurrently (a lock serialises installs).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${MANDATE_CACHE:-$HOME/.cache/mandate}"
VENV="$CACHE/interop-venv"
mkdir -p "$CACHE"
exec 9>"$CACHE/interop-setup.lock"
flock 9
want="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt" >&2
  echo "$want" >"$VENV/.requirements.sha256"
fi
lock_sum="$(sha256sum "$HERE/node/package-lock.json" | cut -d' ' -f1)"
if [ "$(cat "$HERE/node/node_modules/.lock.sha256" 2>/dev/null)" != "$lock_sum" ]; then
  (cd "$HERE/node" && npm ci --silent --no-audit --no-fund >&2)
  echo "$lock_sum" >"$HERE/node/node_modules/.lock.sha256"
fi
echo "$VENV/bin/python"
