//! The keychain against a real Secret Service (gnome-keyring on a private D-Bus session,
//! started by `scripts/with-keyring`). Cases that change the environment or lock the
//! collection run in a child process (this same binary, re-invoked with one test selected) so
//! they cannot disturb tests running in parallel.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use mandate_core::secret::{Keychain, KeychainError, SecretRef, Sensitive};
use mandate_keychain::OsKeychain;

const CHILD: &str = "MANDATE_KEYCHAIN_TEST_CHILD";

fn require_harness() {
    assert_eq!(
        std::env::var("MANDATE_KEYRING_HARNESS").as_deref(),
        Ok("1"),
        "run these tests inside scripts/with-keyring (a private Secret Service)"
    );
}

fn unique_service(tag: &str) -> String {
    format!("mandate-kc-test-{tag}-{}", std::process::id())
}

fn r(account: &str) -> SecretRef {
    SecretRef {
        account: account.into(),
    }
}

fn secret_tool_search(service: &str) -> String {
    let out = Command::new("secret-tool")
        .args(["search", "--all", "service", service])
        .output()
        .expect("secret-tool");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Re-run this test binary with only `test` selected and `mode` in the child variable.
fn run_child(test: &str, mode: &str, env: &[(&str, &str)]) -> std::process::Output {
    let exe = std::env::current_exe().unwrap();
    let mut c = Command::new(exe);
    c.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, mode);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

#[test]
fn round_trip_replace_and_delete() {
    require_harness();
    let kc = OsKeychain::open(&unique_service("rt")).unwrap();
    let a = r("inst/connection/1");
    assert!(kc.get(&a).unwrap().is_none());
    kc.set(&a, &Sensitive::new("first-secret".into())).unwrap();
    assert_eq!(kc.get(&a).unwrap().unwrap().expose(), "first-secret");
    kc.set(&a, &Sensitive::new("second-secret".into())).unwrap();
    let got = kc.get(&a).unwrap().unwrap();
    assert_eq!(got.expose(), "second-secret");
    assert_eq!(format!("{got:?}"), "[REDACTED]");
    kc.delete(&a).unwrap();
    assert!(kc.get(&a).unwrap().is_none());
    kc.delete(&a).unwrap(); // deleting a missing item is fine
    kc.status().unwrap();
    assert_eq!(kc.describe(), "Secret Service (D-Bus)");
}

#[test]
fn items_are_visible_to_secret_tool_under_our_service() {
    require_harness();
    let service = unique_service("st");
    let kc = OsKeychain::open(&service).unwrap();
    kc.set(
        &r("inst/issuer-key/abc"),
        &Sensitive::new("seed-bytes-b64".into()),
    )
    .unwrap();
    let listing = secret_tool_search(&service);
    assert!(listing.contains("inst/issuer-key/abc"), "{listing}");
    assert!(listing.contains("seed-bytes-b64"), "{listing}");
    kc.delete(&r("inst/issuer-key/abc")).unwrap();
    assert!(!secret_tool_search(&service).contains("inst/issuer-key/abc"));
}

#[test]
fn services_do_not_see_each_other() {
    require_harness();
    let a = OsKeychain::open(&unique_service("a")).unwrap();
    let b = OsKeychain::open(&unique_service("b")).unwrap();
    a.set(&r("same"), &Sensitive::new("from-a".into())).unwrap();
    assert!(b.get(&r("same")).unwrap().is_none());
    b.set(&r("same"), &Sensitive::new("from-b".into())).unwrap();
    assert_eq!(a.get(&r("same")).unwrap().unwrap().expose(), "from-a");
    a.delete(&r("same")).unwrap();
    b.delete(&r("same")).unwrap();
}

#[test]
fn no_session_bus_is_unavailable_with_a_fix() {
    if std::env::var(CHILD).as_deref() == Ok("no-bus") {
        let started = Instant::now();
        let err = OsKeychain::open("mandate-kc-test-nobus")
            .and_then(|k| k.get(&r("x")))
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "fails fast");
        assert!(matches!(err, KeychainError::Unavailable { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("gnome-keyring"), "{msg}");
        println!("CHILD-OK");
        return;
    }
    require_harness();
    for bus in ["unix:path=/nonexistent/mandate-bus", ""] {
        let out = run_child(
            "no_session_bus_is_unavailable_with_a_fix",
            "no-bus",
            &[("DBUS_SESSION_BUS_ADDRESS", bus)],
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("CHILD-OK"),
            "bus {bus:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_locked_collection_is_reported_as_locked_quickly() {
    if std::env::var(CHILD).as_deref() == Ok("locked") {
        // Inside a private harness of our own: lock every collection, then use it.
        let kc = OsKeychain::open("mandate-kc-test-locked").unwrap();
        kc.set(&r("before"), &Sensitive::new("v".into())).unwrap();
        let st = Command::new("dbus-send")
            .args([
                "--session",
                "--print-reply",
                "--dest=org.freedesktop.secrets",
                "/org/freedesktop/secrets",
                "org.freedesktop.Secret.Service.Lock",
                "array:objpath:/org/freedesktop/secrets/collection/login",
            ])
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        let started = Instant::now();
        let err = kc
            .set(&r("after"), &Sensitive::new("v".into()))
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no hang on a locked keyring"
        );
        assert!(matches!(err, KeychainError::Locked { .. }), "{err:?}");
        assert!(err.to_string().contains("unlock"), "{err}");
        println!("CHILD-OK");
        return;
    }
    require_harness();
    let harness = repo_root().join("scripts/with-keyring");
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(harness)
        .arg(exe)
        .args([
            "--exact",
            "a_locked_collection_is_reported_as_locked_quickly",
            "--nocapture",
        ])
        .env_remove("MANDATE_KEYRING_HARNESS")
        .env(CHILD, "locked")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("CHILD-OK"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
