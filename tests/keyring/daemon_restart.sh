#!/usr/bin/env bash
# scripts/with-keyring restarts a gnome-keyring-daemon that dies mid-run, and says so.
#
# Run inside the harness: scripts/with-keyring tests/keyring/daemon_restart.sh
# A secret is stored through the real Secret Service (secret-tool, libsecret), the harness's
# daemon is killed with SIGTRAP (what one of its own failed assertions raises, as in the CI run
# where every keychain test after such a crash failed), and then: the harness has started
# another daemon, the secret stored before the crash is still there (the same keyring file,
# unlocked with the same password), a new one can be stored, and the crash is on record.
# Exit 0 when all of that holds.
set -euo pipefail
sandbox="${MANDATE_KEYRING_SANDBOX:?run this inside scripts/with-keyring}"
command -v secret-tool >/dev/null || { echo "secret-tool is missing (apt-get install libsecret-tools)" >&2; exit 127; }
fail() { echo "FAIL: $*" >&2; exit 1; }

printf 'before-the-crash' | secret-tool store --label=probe service mandate-harness account before
[ "$(secret-tool lookup service mandate-harness account before)" = before-the-crash ] \
  || fail "the secret was not stored"

old="$(cat "$sandbox/daemon.pid")"
kill -TRAP "$old"
# A client calling at once, before the watchdog has restarted the daemon, must not get the bus
# to start another one (D-Bus activation starts gnome-keyring without --unlock: a locked
# keyring that keeps the name and leaves every later call waiting for a prompt).
for _ in 1 2 3 4 5; do
  timeout 5 secret-tool lookup service mandate-harness account before >/dev/null 2>&1 &
  sleep 0.05
done
for _ in $(seq 100); do
  new="$(cat "$sandbox/daemon.pid")"
  [ "$new" != "$old" ] && [ -s "$sandbox/daemon-crashes" ] && break
  sleep 0.1
done
[ "$new" != "$old" ] || fail "no new daemon within 10 s"
grep -q "pid $old" "$sandbox/daemon-crashes" || fail "the crash is not on record"
wait
# The pid file is written as the new daemon starts; it owns the name a moment later.
owner=""
for _ in $(seq 100); do
  owner="$(dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus.GetConnectionUnixProcessID string:org.freedesktop.secrets 2>/dev/null \
    | awk '/uint32/ {print $2}' || true)"
  [ -n "$owner" ] && break
  sleep 0.1
done
[ "$owner" = "$new" ] || fail "the Secret Service is served by pid ${owner:-none}, not by the restarted daemon $new ($(ps -o args= -p "${owner:-1}" 2>/dev/null))"

[ "$(secret-tool lookup service mandate-harness account before)" = before-the-crash ] \
  || fail "the secret stored before the crash is gone"
printf 'after-the-crash' | secret-tool store --label=probe service mandate-harness account after \
  || fail "a secret could not be stored after the restart"
[ "$(secret-tool lookup service mandate-harness account after)" = after-the-crash ] \
  || fail "a secret could not be stored after the restart"
echo "ok: daemon $old killed with SIGTRAP, daemon $new serves the same keyring; the crash is on record"
