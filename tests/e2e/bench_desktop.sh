#!/usr/bin/env bash
# Measure the desktop app for docs/BENCHMARKS.md: launch to first paint of the agent list,
# resident memory at idle with 1,000 agents, frame times while scrolling 1,000,000 audit
# events. Builds release binaries, seeds a large installation, runs under Xvfb with a private
# keychain. Usage: tests/e2e/bench_desktop.sh [DATA_DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mandate/target}"
export MANDATE_CACHE="${MANDATE_CACHE:-$HOME/.cache/mandate}"
cd "$ROOT"
if [ "${MANDATE_KEYRING_HARNESS:-}" != "1" ]; then
  # Build before entering the private keychain session (its own HOME).
  (cd ui && npm run --silent build >/dev/null)
  cargo build --profile dist --locked -p mandate-desktop --bin mandate-desktop --example seed >&2
  DATA="${1:-$(mktemp -d)/data}"
  if [ ! -e "$DATA/mandate.db" ]; then
    "$CARGO_TARGET_DIR/dist/examples/seed" "$DATA" 1000 1000000
  fi
  exec "$ROOT/scripts/with-keyring" "$0" "$DATA"
fi
DATA="$1"
DISPLAY_NUM=$((90 + RANDOM % 100))
Xvfb ":$DISPLAY_NUM" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
XVFB_PID=$!
trap 'kill $XVFB_PID 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -e "/tmp/.X11-unix/X$DISPLAY_NUM" ] && break; sleep 0.1; done
export DISPLAY=":$DISPLAY_NUM" NO_AT_BRIDGE=1 GTK_USE_PORTAL=0
export MANDATE_E2E_APP="$CARGO_TARGET_DIR/dist/mandate-desktop"
export MANDATE_E2E_CLI="$CARGO_TARGET_DIR/debug/mandate"
export MANDATE_E2E_TAURI_DRIVER="$MANDATE_CACHE/tools/bin/tauri-driver"
export MANDATE_BENCH_DATA="$DATA"
"$MANDATE_CACHE/venv-e2e/bin/pytest" -q -s -p no:cacheprovider -c tests/e2e/pytest.ini tests/e2e/bench_desktop.py
