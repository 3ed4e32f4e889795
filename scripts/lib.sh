# Shared setup for scripts/run-app and scripts/test. Sourced, not run.
# Every step is idempotent and fast when already done: it checks before it installs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mandate/target}"
export MANDATE_CACHE="${MANDATE_CACHE:-$HOME/.cache/mandate}"
mkdir -p "$MANDATE_CACHE"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Debian/Ubuntu packages for building and running the app and its tests.
APT_PACKAGES=(
  build-essential pkg-config curl ca-certificates
  libwebkit2gtk-4.1-dev libssl-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev
  libdbus-1-dev dbus gnome-keyring libsecret-tools
  xvfb imagemagick x11-utils webkit2gtk-driver
  poppler-utils qpdf sqlite3 python3-venv python3-cryptography rsyslog rsyslog-openssl openssl
  systemd util-linux
  softhsm2 iproute2 chromium
)

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_apt() {
  command -v dpkg-query >/dev/null 2>&1 || {
    say "Not a Debian-based system: install the equivalents of: ${APT_PACKAGES[*]}"
    return 0
  }
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    say "Installing system packages: ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

ensure_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
      export PATH="$HOME/.cargo/bin:$PATH"
    else
      say "Installing Rust with rustup"
      curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy
      export PATH="$HOME/.cargo/bin:$PATH"
    fi
  fi
}

ensure_node() {
  local major=0
  if command -v node >/dev/null 2>&1; then major="$(node -p 'process.versions.node.split(".")[0]')"; fi
  if [ "$major" -lt 20 ]; then
    say "Node.js 20 or newer is needed (found ${major}); installing it"
    ensure_apt nodejs npm
    major="$(node -p 'process.versions.node.split(".")[0]')"
    if [ "$major" -lt 20 ]; then
      as_root npm install -g n >/dev/null && as_root n 20 >/dev/null
      hash -r
    fi
  fi
}

# npm install only when the lock file changed since the last install.
ensure_ui_deps() {
  local stamp="$ROOT/ui/node_modules/.mandate-lock-stamp"
  if [ ! -f "$stamp" ] || ! cmp -s "$ROOT/ui/package-lock.json" "$stamp"; then
    say "Installing UI dependencies (npm ci)"
    (cd "$ROOT/ui" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$ROOT/ui/package-lock.json" "$stamp"
  fi
}

# Build the UI only when a source file is newer than the last build.
ensure_ui_built() {
  ensure_ui_deps
  local out="$ROOT/ui/dist/index.html"
  if [ ! -f "$out" ] || [ -n "$(find "$ROOT/ui/src" "$ROOT/ui/index.html" "$ROOT/ui/package.json" "$ROOT/ui/vite.config.ts" -newer "$out" 2>/dev/null | head -n 1)" ]; then
    say "Building the UI"
    (cd "$ROOT/ui" && npm run --silent build)
  fi
}

ensure_base() {
  ensure_apt "${APT_PACKAGES[@]}"
  ensure_rust
  ensure_node
}

# How long one harnessed `cargo test` may run once built (its slowest, the integration tests,
# take under 2 minutes on 2 cores).
RUST_TEST_BOUND="${MANDATE_TEST_BOUND:-15m}"

# harness_tests WRAPPER... -- CARGO-TEST-ARGS...: build the tests, then run them inside the
# wrappers (scripts/with-keyring first), guarding against two things CI machines have done:
# - A test that never returns. The run is bounded by RUST_TEST_BOUND and then stopped with the
#   names of the tests still running, instead of using up CI's 90 minutes.
# - gnome-keyring-daemon aborting under load (an upstream race: a NULL client in
#   gkd_secret_service_get_pkcs11_session; gnome-keyring work items 190, 196 and 199).
#   with-keyring restarts it, but the keychain calls in flight at that moment fail. Only when
#   the daemon crashed during the run are the tests that failed run once more, by exact name,
#   in a new harness; the crash and the rerun are printed. A test that fails again fails the
#   run, and a failure in a run without a daemon crash is never run again.
harness_tests() {
  local wrappers=()
  while [ "$1" != "--" ]; do wrappers+=("$1"); shift; done
  shift
  cargo test "$@" --no-run
  local out crashes status=0
  out="$(mktemp)"
  crashes="$(mktemp)"
  # bounded ARGS...: cargo test inside the wrappers, in time, its keychain crashes recorded.
  bounded() {
    MANDATE_KEYRING_CRASHES="$crashes" timeout --kill-after=30 "$RUST_TEST_BOUND" \
      "${wrappers[@]}" cargo test "$@"
  }
  bounded "$@" 2>&1 | tee "$out" || status=$?
  if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    say "Stopped after $RUST_TEST_BOUND: cargo test $* did not finish. Still running then:"
    grep "has been running for over" "$out" >&2 || echo "  (no test had run for over 60 s)" >&2
  elif [ "$status" -ne 0 ] && [ -s "$crashes" ]; then
    local failed=()
    mapfile -t failed < <(sed -n 's/^test \(.*\) \.\.\. FAILED$/\1/p' "$out" | sort -u)
    if [ "${#failed[@]}" -gt 0 ]; then
      say "gnome-keyring-daemon crashed during these tests (restarted by with-keyring):"
      cat "$crashes" >&2
      say "Running the ${#failed[@]} test(s) that failed then once more: ${failed[*]}"
      : >"$crashes"
      status=0
      bounded "$@" -- --exact "${failed[@]}" || status=$?
      [ -s "$crashes" ] && { say "gnome-keyring-daemon crashed again:"; cat "$crashes" >&2; }
    fi
  fi
  rm -f "$out" "$crashes"
  return "$status"
}
