#!/usr/bin/env bash
# Benchmark the secret broker (a measurement, not a test) for docs/BENCHMARKS.md: the latency
# `/proxy/...` adds over calling the same upstream directly. A release `mandate serve`
# (auditing on: one durable `proxy.allowed` before forwarding, `proxy.completed` after), the
# Python test upstream on loopback, a private keychain (scripts/with-keyring).
#
# Usage: tests/broker_upstream/bench.sh [CALLS]   (default 2000)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
if [ "${MANDATE_KEYRING_HARNESS:-}" != "1" ]; then
  exec "$ROOT/scripts/with-keyring" "$0" "$@"
fi
CALLS="${1:-2000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mandate/target}"
cd "$ROOT"
cargo build --profile dist -p mandate-cli --bin mandate >&2
BIN="$CARGO_TARGET_DIR/dist/mandate"
WORK="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
export MANDATE_DATA_DIR="$WORK/data" MANDATE_KEYCHAIN_SERVICE="mandate-bench-broker-$$"

python3 tests/broker_upstream/upstream.py /dev/null >"$WORK/up.out" &
PIDS+=($!)
for _ in $(seq 1 50); do [ -s "$WORK/up.out" ] && break; sleep 0.1; done
UP="http://127.0.0.1:$(head -1 "$WORK/up.out")"

m() { "$BIN" "$@" >/dev/null; }
m member add founder
m connection add github --preset github --base-url "$UP"
printf %s "ghp_benchmarkSECRET0123456789abcdef" | m connection set-secret github
m agent add bench-agent --owner founder --purpose benchmark --scope github:repo.read --generate-key

"$BIN" serve --port 0 >"$WORK/serve.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do grep -q "Listening on" "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
URL="$(sed -n 's/.*Listening on //p' "$WORK/serve.out" | head -1)"
TOKEN="$("$BIN" token bench-agent)"
python3 tests/broker_upstream/bench.py "$UP/repos/acme/billing/issues" \
  "$URL/proxy/github/repos/acme/billing/issues" "$TOKEN" "$CALLS"
