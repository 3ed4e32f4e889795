#!/usr/bin/env bash
# Install what the independent verifier needs (requirements.txt: cryptography and pypdf) into
# a venv under the cache folder, idempotently, and print the venv's python. Safe to run
# concurrently (a lock serialises installs). Bundles alone need only cryptography; PDF reports
# need pypdf.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${MANDATE_CACHE:-$HOME/.cache/mandate}"
VENV="$CACHE/verifier-venv"
mkdir -p "$CACHE"
exec 9>"$CACHE/verifier-setup.lock"
flock 9
want="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt" >&2
  echo "$want" >"$VENV/.requirements.sha256"
fi
echo "$VENV/bin/python"
