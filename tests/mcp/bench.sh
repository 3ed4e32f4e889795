#!/usr/bin/env bash
# The MCP gateway benchmark (docs/BENCHMARKS.md): a trivial tool called directly and through
# `mandate mcp run` (release build), side by side in one run, with durable audit on every call.
# Usage: tests/mcp/bench.sh [SEQ_CALLS=2000] [CLIENTS=32] [SECONDS=15]
# Builds `mandate` (release) unless MANDATE_BIN points at a binary. Runs inside
# scripts/with-keyring (the audit trail signs checkpoints with the keychain's issuer key).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
source "$ROOT/scripts/lib.sh"
SEQ="${1:-2000}" CLIENTS="${2:-32}" SECONDS_="${3:-15}"
if [ -z "${MANDATE_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release -p mandate-cli --bin mandate >&2)
  MANDATE_BIN="$CARGO_TARGET_DIR/release/mandate"
fi
mapfile -t PARTS < <("$ROOT/tests/mcp/setup.sh")
NODE_DIR="${PARTS[0]}"
cp "$ROOT/tests/mcp/bench.mjs" "$NODE_DIR/bench.mjs"
SERVER="$NODE_DIR/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export MANDATE_DATA_DIR="$WORK/data" MANDATE_KEYCHAIN_SERVICE="mandate-bench-$$"
"$MANDATE_BIN" member add founder >/dev/null
"$MANDATE_BIN" mcp add everything -- node "$SERVER" stdio >/dev/null
"$MANDATE_BIN" agent add bench-agent --owner founder --purpose "MCP gateway benchmark" \
  --scope everything:echo --generate-key >/dev/null
# The endpoint, for the Streamable HTTP side (one process: its audit writes share group commits).
"$MANDATE_BIN" serve --port 0 --no-rate-limit >"$WORK/serve.out" 2>&1 &
SERVE_PID=$!
trap 'kill $SERVE_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do grep -q "Listening on" "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
ISSUER="$(sed -n 's/^Listening on //p' "$WORK/serve.out" | head -1)"
PORT="${ISSUER##*:}"
export MANDATE_MCP_TOKEN="$("$MANDATE_BIN" token bench-agent --aud "$ISSUER/mcp/everything" --port "$PORT")"
say "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
node "$NODE_DIR/bench.mjs" "$SEQ" "$CLIENTS" "$SECONDS_" \
  -- node "$SERVER" stdio \
  -- "$MANDATE_BIN" mcp run --agent bench-agent everything \
  -- "$ISSUER/mcp/everything"
events="$(sqlite3 "$MANDATE_DATA_DIR/mandate.db" "SELECT count(*) FROM audit_events WHERE action LIKE 'mcp.tool_%'")"
say "audit events written by the gateway runs: $events"
"$MANDATE_BIN" audit verify >&2
