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
fn nothing_returned_prints_the_secret() {
    require_harness();
    let kc = OsKeychain::open(&unique_service("dbg")).unwrap();
    let value = "never-print-this-value-7f3a";
    kc.set(&r("dbg"), &Sensitive::new(value.into())).unwrap();
    let got = kc.get(&r("dbg"));
    for shown in [
        format!("{got:?}"),
        format!("{kc:?}"),
        format!("{:?}", kc.status()),
        format!("{:?}", kc.delete(&r("dbg"))),
        kc.describe(),
    ] {
        assert!(!shown.contains(value), "{shown}");
    }
    assert_eq!(format!("{got:?}"), "Ok(Some([REDACTED]))");
    assert_eq!(got.unwrap().unwrap().expose(), value);
}

/// A session bus with no Secret Service on it and no way to activate one (no service
/// directories), so gnome-keyring cannot be started behind our back.
fn bare_bus_config(dir: &std::path::Path) -> PathBuf {
    let path = dir.join("bare-session.conf");
    std::fs::write(
        &path,
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:tmpdir=/tmp</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
    )
    .unwrap();
    path
}

fn secret_service_is_on_the_bus() -> bool {
    let out = Command::new("dbus-send")
        .args([
            "--session",
            "--print-reply",
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.NameHasOwner",
            "string:org.freedesktop.secrets",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).contains("boolean true")
}

fn assert_unavailable_with_fix(err: &KeychainError) {
    assert!(matches!(err, KeychainError::Unavailable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("gnome-keyring-daemon --unlock --components=secrets"),
        "{msg}"
    );
}

#[test]
fn no_secret_service_on_the_bus_is_unavailable_with_a_fix() {
    if std::env::var(CHILD).as_deref() == Ok("no-service") {
        // 1. Nothing owns org.freedesktop.secrets on this bus.
        assert!(!secret_service_is_on_the_bus());
        let started = Instant::now();
        let err = OsKeychain::open("mandate-kc-test-nosvc").unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "fails fast");
        assert_unavailable_with_fix(&err);

        // 2. The service was there at open and went away afterwards.
        let mut daemon = Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut stdin = daemon.stdin.take().unwrap();
            stdin.write_all(b"mandate-test\n").unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !secret_service_is_on_the_bus() {
            assert!(Instant::now() < deadline, "gnome-keyring did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let kc = OsKeychain::open("mandate-kc-test-gone").unwrap();
        kc.set(&r("x"), &Sensitive::new("v".into())).unwrap();
        daemon.kill().unwrap();
        daemon.wait().unwrap();
        let started = Instant::now();
        let err = kc.get(&r("x")).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "fails fast");
        assert_unavailable_with_fix(&err);
        let err = kc.status().unwrap_err();
        assert_unavailable_with_fix(&err);
        println!("CHILD-OK");
        return;
    }
    require_harness();
    let dir = tempfile::tempdir().unwrap();
    let config = bare_bus_config(dir.path());
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("dbus-run-session")
        .arg(format!("--config-file={}", config.display()))
        .arg("--")
        .arg(exe)
        .args([
            "--exact",
            "no_secret_service_on_the_bus_is_unavailable_with_a_fix",
            "--nocapture",
        ])
        .env(CHILD, "no-service")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("CHILD-OK"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn no_session_bus_is_unavailable_with_a_fix() {
    if std::env::var(CHILD).as_deref() == Ok("no-bus") {
        let started = Instant::now();
        let err = OsKeychain::open("mandate-kc-test-nobus")
            .and_then(|k| k.get(&r("x")))
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "fails fast");
        assert_unavailable_with_fix(&err);
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
        kc.status().unwrap(); // the probe item exists from here on: status must read it
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
        let value = "locked-secret-value-91c2";
        let started = Instant::now();
        let results = [
            kc.set(&r("after"), &Sensitive::new(value.into())),
            kc.get(&r("before")).map(|_| ()),
            kc.status(),
        ];
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no hang on a locked keyring"
        );
        for (what, result) in ["set", "get", "status"].into_iter().zip(results) {
            let Err(err) = result else {
                panic!("{what} on a locked collection succeeded")
            };
            assert!(
                matches!(err, KeychainError::Locked { .. }),
                "{what}: {err:?}"
            );
            assert!(
                err.to_string().contains("unlock your login keyring"),
                "{what}: {err}"
            );
            assert!(!format!("{err:?}{err}").contains(value));
        }
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
