//! Connection credentials go to the OS keychain and nowhere else: not the database (nor its
//! WAL), not the logs, not the CLI's output. A missing keychain is an explained failure, never
//! a silent fallback.

use std::process::Command;

use crate::fixture::Env;

/// A session bus address where nothing listens: the keychain is unreachable.
const NO_BUS: (&str, &str) = (
    "DBUS_SESSION_BUS_ADDRESS",
    "unix:path=/nonexistent/mandate-bus",
);

const SECRET: &str = "ghp_TestSecretValue0123456789abcdefXYZ";

fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            let bytes = std::fs::read(&p).unwrap();
            if bytes.windows(needle.len()).any(|w| w == needle) {
                hits.push(p.display().to_string());
            }
        }
    }
    hits
}

#[test]
fn set_secret_reaches_the_keychain_and_nowhere_else() {
    let env = Env::new();
    env.seed();
    let r = env.run_full(
        &["connection", "set-secret", "github"],
        Some(format!("{SECRET}\n").as_bytes()),
        &[("MANDATE_LOG", "trace")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let logs = format!("{}{}", r.stdout, r.stderr);
    assert!(
        !logs.contains(SECRET),
        "the secret leaked into output or logs"
    );

    // secret-tool, an independent client of the Secret Service, finds it.
    let listing = env.keychain_listing();
    assert!(listing.contains(&env.service), "{listing}");
    let lookup = Command::new("secret-tool")
        .args(["search", "--all", "--unlock", "service", &env.service])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&lookup.stdout).contains(SECRET)
            || String::from_utf8_lossy(&lookup.stderr).contains(SECRET),
        "secret-tool should show the stored secret: {listing}"
    );

    // Nowhere in the database, its WAL or anything else in the data folder.
    env.run(&["agent", "list"]).ok(); // let SQLite touch its files again
    assert_eq!(
        files_containing(&env.data_dir(), SECRET.as_bytes()),
        Vec::<String>::new()
    );

    // The connection says a secret is set, not what it is.
    let c = env.run(&["connection", "show", "github", "--json"]).ok();
    assert_eq!(c.json()["has_secret"], true);
    assert!(!c.stdout.contains(SECRET));

    // Replacing it keeps one item; removing the connection deletes it from the keychain.
    env.run_stdin(
        &["connection", "set-secret", "github"],
        b"ghp_Replacement123",
    )
    .ok();
    env.run(&["connection", "remove", "github"]).ok();
    let after = Command::new("secret-tool")
        .args(["search", "--all", "--unlock", "service", &env.service])
        .output()
        .unwrap();
    let after = String::from_utf8_lossy(&after.stdout);
    assert!(
        !after.contains("ghp_Replacement123") && !after.contains(SECRET),
        "{after}"
    );
    // The agent lost its github scope, and the audit trail says so.
    let a = env
        .run(&["agent", "show", "billing-report-agent", "--json"])
        .ok()
        .json();
    assert_eq!(a["scopes"].as_array().unwrap().len(), 0);
}

#[test]
fn an_empty_secret_is_refused_and_nothing_is_stored() {
    let env = Env::new();
    env.seed();
    let before = env.snapshot();
    env.run_stdin(&["connection", "set-secret", "github"], b"")
        .fails(3, "the secret is empty");
    env.run_stdin(&["connection", "set-secret", "github"], b"\n")
        .fails(3, "the secret is empty");
    assert_eq!(env.snapshot(), before);
    let c = env
        .run(&["connection", "show", "github", "--json"])
        .ok()
        .json();
    assert_eq!(c["has_secret"], false);
    env.run_stdin(&["connection", "set-secret", "nope"], b"x")
        .fails(4, "no connection named 'nope'");
}

#[test]
fn no_keychain_is_an_explained_failure_not_a_fallback() {
    let env = Env::new();
    env.seed();
    let before = env.snapshot();
    let r = env.run_full(
        &["connection", "set-secret", "github"],
        Some(SECRET.as_bytes()),
        &[NO_BUS],
    );
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert!(r.stderr.contains("keychain"), "{}", r.stderr);
    assert!(!r.stderr.contains(SECRET));
    assert_eq!(
        env.snapshot(),
        before,
        "nothing recorded without the keychain"
    );
    // Generating an agent key needs the keychain too; nothing is half-written.
    let r = env.run_with_env(
        &[
            "agent",
            "add",
            "other-agent",
            "--owner",
            "founder",
            "--purpose",
            "p",
            "--generate-key",
        ],
        &[NO_BUS],
    );
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert_eq!(env.snapshot(), before);
    // Reading the registry still works without the keychain.
    let r = env.run_with_env(&["agent", "list", "--json"], &[NO_BUS]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}
