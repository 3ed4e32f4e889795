#!/usr/bin/env bash
# scripts/lib.sh's harness_tests, the way scripts/test runs the Rust tests, against a stand-in
# `cargo` whose "tests" do what CI machines have seen (the real gnome-keyring-daemon, in the
# real scripts/with-keyring, is killed with SIGTRAP as its own failed assertion does):
# 1. a test fails while the daemon crashes: the crash is printed, the failed test (only it) is
#    run once more by exact name, and the run passes when it passes then;
# 2. the same, but the test fails again: the run fails;
# 3. a test fails and the daemon did not crash: the run fails and nothing is run again;
# 4. a test that never returns: the run is stopped at the bound and fails, naming the test.
# Exit 0 when all four hold.
#
# Usage: tests/keyring/harness_tests.sh   (scripts/test runs it; needs gnome-keyring and dbus)
set -euo pipefail
# shellcheck source=../../scripts/lib.sh
source "$(dirname "$0")/../../scripts/lib.sh"
fail() { echo "FAIL: $*" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir "$work/bin"
# The stand-in cargo: `cargo test ARGS [-- FILTERS]`. SCENARIO picks what the run does; every
# invocation is appended to $work/calls.
cat >"$work/bin/cargo" <<'SHIM'
#!/usr/bin/env bash
echo "$*" >>"$WORK/calls"
case " $* " in *" --no-run "*) exit 0 ;; esac
rerun=0
case " $* " in *" --exact "*) rerun=1 ;; esac
echo "test keychain::stores_a_secret ... ok"
case "$SCENARIO:$rerun" in
  crash-then-pass:0 | crash-then-fail:0)
    kill -TRAP "$(cat "$MANDATE_KEYRING_SANDBOX/daemon.pid")"
    sleep 1.5 # the harness's watchdog looks every 0.5 s
    echo "test keychain::lost_in_the_crash ... FAILED"; exit 101 ;;
  crash-then-pass:1) echo "test keychain::lost_in_the_crash ... ok"; exit 0 ;;
  crash-then-fail:1 | no-crash:0) echo "test keychain::lost_in_the_crash ... FAILED"; exit 101 ;;
  hang:0) echo "test slow::never_returns has been running for over 60 seconds"; sleep 600 ;;
esac
echo "unexpected: $SCENARIO:$rerun" >&2
exit 99
SHIM
chmod +x "$work/bin/cargo"
export PATH="$work/bin:$PATH" WORK="$work"

# run SCENARIO: harness_tests in a subshell (it may exit), its status and output kept.
run() {
  : >"$work/calls"
  local status=0
  (SCENARIO="$1" harness_tests "$ROOT/scripts/with-keyring" -- --locked -p demo) \
    >"$work/out" 2>&1 || status=$?
  echo "$status"
}

[ "$(run crash-then-pass)" = 0 ] || fail "a test lost in a daemon crash that passes when run again failed the run: $(cat "$work/out")"
grep -q "gnome-keyring-daemon crashed during these tests" "$work/out" || fail "the crash was not printed"
grep -q -- "-- --exact keychain::lost_in_the_crash$" "$work/calls" || fail "not rerun by exact name: $(cat "$work/calls")"
[ "$(grep -c -- "--exact" "$work/calls")" = 1 ] || fail "rerun more than once"

[ "$(run crash-then-fail)" != 0 ] || fail "a test that failed again passed the run"

[ "$(run no-crash)" != 0 ] || fail "a failure without a daemon crash passed the run"
! grep -q -- "--exact" "$work/calls" || fail "a failure without a daemon crash was run again"

MANDATE_TEST_BOUND=3s
RUST_TEST_BOUND=3s
[ "$(run hang)" != 0 ] || fail "a hung test passed the run"
grep -q "Stopped after 3s" "$work/out" || fail "the stop was not explained: $(cat "$work/out")"
grep -q "slow::never_returns" "$work/out" || fail "the hung test was not named"
echo "ok: a daemon crash reruns only the failed tests once; a second failure, a failure without a crash and a hang fail the run"
