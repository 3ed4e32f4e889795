#!/usr/bin/env bash
# Install the attestation signers (securesystemslib, in-toto-attestation) into their own venv
# under the cache folder, idempotently; print the venv's python. Kept apart from the OAuth
# interop venv so neither reinstalls the other. Safe to run concurrently (a lock serialises).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${MANDATE_CACHE:-$HOME/.cache/mandate}"
VENV="$CACHE/attest-venv"
mkdir -p "$CACHE"
exec 9>"$CACHE/attest-setup.lock"
flock 9
want="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt" >&2
  echo "$want" >"$VENV/.requirements.sha256"
fi
echo "$VENV/bin/python"
