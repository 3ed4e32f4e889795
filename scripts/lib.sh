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
