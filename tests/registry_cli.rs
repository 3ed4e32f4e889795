//! The registry through the real `mandate` binary: the issue's walk-through, every kind of
//! bad input (each a clear error with its exit code, nothing half-written), and two
//! processes writing at once.

use std::process::Stdio;

use crate::fixture::Env;

#[test]
fn founder_walkthrough_lists_the_agent_with_its_trust_state() {
    let env = Env::new();
    env.seed();
    let list = env.run(&["agent", "list", "--json"]).ok().json();
    let agents = list.as_array().unwrap();
    assert_eq!(agents.len(), 1);
    let a = &agents[0];
    assert_eq!(a["name"], "billing-report-agent");
    assert_eq!(a["owner"], "founder");
    assert_eq!(a["status"], "active");
    assert_eq!(a["trust"]["state"], "PENDING", "new agents start PENDING");
    assert_eq!(a["scopes"][0], "github:repo.read");
    assert_eq!(a["keys"][0]["origin"], "keychain");
    assert_eq!(a["config_version"], 1);
    // The private key went to the real keychain, under this installation's service.
    let kid = a["keys"][0]["kid"].as_str().unwrap();
    assert!(
        env.keychain_listing().contains(kid),
        "{}",
        env.keychain_listing()
    );
    // The human table names it too.
    let table = env.run(&["agent", "list"]).ok().stdout;
    assert!(
        table.contains("billing-report-agent") && table.contains("PENDING"),
        "{table}"
    );
    // Every change is audited, in a chain.
    let events = env.snapshot();
    assert!(events.contains(&("audit_events".into(), 3)), "{events:?}");
}

#[test]
fn edit_bumps_the_config_version_and_revoke_is_final() {
    let env = Env::new();
    env.seed();
    let a = env
        .run(&[
            "agent",
            "edit",
            "billing-report-agent",
            "--add-scope",
            "github:issues.write",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(a["config_version"], 2);
    assert_eq!(a["scopes"].as_array().unwrap().len(), 2);
    let a = env
        .run(&[
            "agent",
            "suspend",
            "billing-report-agent",
            "--reason",
            "odd traffic",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(a["status"], "suspended");
    assert_eq!(a["trust"]["state"], "UNTRUSTED");
    env.run(&["agent", "suspend", "billing-report-agent"])
        .fails(5, "already suspended");
    let a = env
        .run(&["agent", "resume", "billing-report-agent", "--json"])
        .ok()
        .json();
    assert_eq!(a["status"], "active");
    env.run(&["agent", "revoke", "billing-report-agent"])
        .fails(2, "--reason");
    let a = env
        .run(&[
            "agent",
            "revoke",
            "billing-report-agent",
            "--reason",
            "replaced",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(a["status"], "revoked");
    // Revocation removes the private key this machine held.
    let kid = a["keys"][0]["kid"].as_str().unwrap().to_string();
    assert!(!env.keychain_listing().contains(&kid));
    let before = env.snapshot();
    env.run(&["agent", "edit", "billing-report-agent", "--purpose", "x"])
        .fails(5, "revoked, which is final");
    env.run(&["agent", "resume", "billing-report-agent"])
        .fails(5, "revoked, which is final");
    env.run(&["agent", "rotate-key", "billing-report-agent"])
        .fails(5, "revoked, which is final");
    assert_eq!(env.snapshot(), before, "refused changes write nothing");
}

#[test]
fn key_rotation_keeps_the_old_key_for_the_overlap() {
    let env = Env::new();
    env.seed();
    let a = env
        .run(&[
            "agent",
            "rotate-key",
            "billing-report-agent",
            "--overlap",
            "1h",
            "--json",
        ])
        .ok()
        .json();
    let keys = a["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(
        keys[0]["expires_at"].is_string(),
        "old key retires after the overlap"
    );
    assert!(keys[1]["expires_at"].is_null(), "new key is open-ended");
    assert_eq!(a["config_version"], 2);
    env.run(&[
        "agent",
        "rotate-key",
        "billing-report-agent",
        "--overlap",
        "90d",
    ])
    .fails(3, "30 days");
}

#[test]
fn registers_public_keys_in_every_format_and_files_private_keys_once() {
    let env = Env::new();
    env.seed();
    // A private key written to a file (0600), then its public half registered elsewhere.
    let key_file = env.dir.path().join("agent.jwk");
    let key_file_s = key_file.to_str().unwrap();
    env.run(&[
        "agent",
        "add",
        "file-key-agent",
        "--owner",
        "founder",
        "--purpose",
        "p",
        "--generate-key",
        "--key-file",
        key_file_s,
    ])
    .ok();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Never overwrite an existing key file, and write nothing when refusing.
    let before = env.snapshot();
    env.run(&[
        "agent",
        "add",
        "second-agent",
        "--owner",
        "founder",
        "--purpose",
        "p",
        "--generate-key",
        "--key-file",
        key_file_s,
    ])
    .fails(7, "already exists");
    assert_eq!(env.snapshot(), before);

    // OpenSSH, PEM and JWK public keys made by other tools.
    let ssh_dir = env.dir.path().join("ssh");
    std::fs::create_dir(&ssh_dir).unwrap();
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(ssh_dir.join("id"))
        .stdout(Stdio::null())
        .status();
    if let Ok(s) = status {
        assert!(s.success());
        env.run(&[
            "agent",
            "add",
            "ssh-agent",
            "--owner",
            "founder",
            "--purpose",
            "p",
            "--public-key",
            ssh_dir.join("id.pub").to_str().unwrap(),
        ])
        .ok();
    }
    let pem = env.dir.path().join("pub.pem");
    let ok = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(env.dir.path().join("priv.pem"))
        .status()
        .unwrap()
        .success()
        && std::process::Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(env.dir.path().join("priv.pem"))
            .arg("-out")
            .arg(&pem)
            .status()
            .unwrap()
            .success();
    assert!(ok, "openssl makes an Ed25519 key");
    let a = env
        .run(&[
            "agent",
            "add",
            "pem-agent",
            "--owner",
            "founder",
            "--purpose",
            "p",
            "--public-key",
            pem.to_str().unwrap(),
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(a["keys"][0]["origin"], "registered");
    // The same public key cannot belong to two agents.
    env.run(&[
        "agent",
        "add",
        "pem-agent-two",
        "--owner",
        "founder",
        "--purpose",
        "p",
        "--public-key",
        pem.to_str().unwrap(),
    ])
    .fails(5, "already registered");
}

/// Make a key pair of another type with openssl and write its public half to `out`.
fn openssl_public_key(env: &Env, alg: &str, opts: &[&str], out: &std::path::Path) {
    let private = env.dir.path().join(format!("{alg}.priv"));
    let ok = |c: &mut std::process::Command| c.status().unwrap().success();
    assert!(ok(std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", alg])
        .args(opts)
        .arg("-out")
        .arg(&private)));
    assert!(ok(std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(out)));
}

/// Each bad input: exit code, a sentence naming the problem, and nothing written.
#[test]
fn bad_input_is_refused_clearly_and_writes_nothing() {
    let env = Env::new();
    env.seed();
    let rsa = env.dir.path().join("rsa.pem");
    let p256 = env.dir.path().join("p256.pem");
    openssl_public_key(&env, "RSA", &["-pkeyopt", "rsa_keygen_bits:1024"], &rsa);
    openssl_public_key(&env, "EC", &["-pkeyopt", "ec_paramgen_curve:P-256"], &p256);
    let truncated = env.dir.path().join("trunc.jwk");
    std::fs::write(
        &truncated,
        r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg"}"#,
    )
    .unwrap();
    let rsa = rsa.to_str().unwrap();
    let p256 = p256.to_str().unwrap();
    let truncated = truncated.to_str().unwrap();
    let add = [
        "agent",
        "add",
        "new-agent",
        "--owner",
        "founder",
        "--purpose",
        "p",
    ];
    fn with<'a>(add: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [add, extra].concat()
    }
    // (arguments, exit code, what the message must say)
    #[rustfmt::skip]
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["agent", "add", "Billing_Agent", "--owner", "founder", "--purpose", "p"], 3, "not a valid agent name"),
        (vec!["agent", "add", "x", "--owner", "founder", "--purpose", "p"], 3, "at least 2 characters"),
        (vec!["agent", "add", "billing-report-agent", "--owner", "founder", "--purpose", "p"], 5, "already exists"),
        (vec!["agent", "add", "founder", "--owner", "founder", "--purpose", "p"], 5, "must never pass for a person"),
        (vec!["agent", "add", "new-agent", "--owner", "nobody", "--purpose", "p"], 4, "mandate member add nobody"),
        (with(&add, &["--scope", "github:repo.delete"]), 3, "offers no action 'repo.delete'"),
        (with(&add, &["--scope", "slack:chat.write"]), 3, "connection 'slack', which does not exist"),
        (with(&add, &["--scope", "github:*"]), 3, "wildcard"),
        (with(&add, &["--public-key", rsa]), 3, "Ed25519"),
        (with(&add, &["--public-key", p256]), 3, "Ed25519"),
        (with(&add, &["--public-key", truncated]), 3, "truncated"),
        (vec!["agent", "add", "new-agent", "--owner", "founder", "--purpose", " "], 3, "purpose is empty"),
        (vec!["member", "add", "billing-report-agent"], 5, "already an agent's name"),
        (vec!["member", "add", "founder"], 5, "already exists"),
        (vec!["connection", "add", "github", "--base-url", "https://x.example"], 5, "already exists"),
        (vec!["connection", "add", "gitlab", "--base-url", "ftp://x"], 3, "http(s) URL"),
        (vec!["connection", "add", "gitlab", "--base-url", "https://u:p@x.example"], 3, "password"),
        (vec!["connection", "add", "gitlab", "--base-url", "https://x.example", "--action", "read"], 3, "NAME=METHOD:PATH"),
        (vec!["agent", "edit", "billing-report-agent"], 3, "nothing to change"),
        (vec!["agent", "edit", "billing-report-agent", "--remove-scope", "github:issues.write"], 3, "does not hold"),
        (vec!["agent", "show", "ghost-agent"], 4, "no agent named 'ghost-agent'"),
        (vec!["agent", "trust", "billing-report-agent", "--set", "TRUSTED"], 3, "--reason"),
    ];
    for (args, code, needle) in cases {
        let before = env.snapshot();
        let run = env.run(&args);
        assert_eq!(run.code, code, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{args:?}: {}", run.stderr);
        assert_eq!(env.snapshot(), before, "{args:?} wrote something");
    }
    // JSON errors carry a stable code for scripts.
    let r = env.run(&["agent", "show", "ghost-agent", "--json"]);
    let err: serde_json::Value = serde_json::from_str(r.stderr.trim()).unwrap();
    assert_eq!(err["error"]["code"], "not_found");
}

#[test]
fn a_database_from_a_newer_version_is_refused() {
    let env = Env::new();
    env.seed();
    let st = crate::fixture::sqlite3(env.db_path())
        .arg("PRAGMA user_version = 999")
        .status()
        .unwrap();
    assert!(st.success());
    env.run(&["agent", "list"])
        .fails(7, "newer version of Mandate");
}

#[test]
fn an_unusable_data_folder_is_explained() {
    let env = Env::new();
    let file = env.dir.path().join("not-a-folder");
    std::fs::write(&file, b"x").unwrap();
    let r = env.run_with_env(
        &["agent", "list"],
        &[("MANDATE_DATA_DIR", file.to_str().unwrap())],
    );
    assert_eq!(r.code, 7, "{}", r.stderr);
    assert!(
        r.stderr.contains("not a folder") && r.stderr.contains("MANDATE_DATA_DIR"),
        "{}",
        r.stderr
    );
    // /proc is read-only even for root.
    let r = env.run_with_env(&["agent", "list"], &[("MANDATE_DATA_DIR", "/proc/self")]);
    assert_eq!(r.code, 7, "{}", r.stderr);
    assert!(r.stderr.contains("not writable"), "{}", r.stderr);
    // A missing folder is created (owner-only).
    let fresh = env.dir.path().join("a/b/c");
    let r = env.run_with_env(
        &["member", "list"],
        &[("MANDATE_DATA_DIR", fresh.to_str().unwrap())],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(fresh.join("mandate.db").exists());
}

#[test]
fn two_processes_writing_at_once_both_land_in_one_chain() {
    let env = Env::new();
    env.run(&["member", "add", "founder"]).ok();
    let mut children = Vec::new();
    for i in 0..8 {
        let child = env
            .cmd(&["member", "add", &format!("member-{i}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        children.push(child);
    }
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let members = env.run(&["member", "list", "--json"]).ok().json();
    assert_eq!(members.as_array().unwrap().len(), 9);
    let counts = env.snapshot();
    assert!(counts.contains(&("audit_events".into(), 9)), "{counts:?}");
    // The chain is unbroken: sequence numbers are 1..=9 with no gap.
    let out = crate::fixture::sqlite3(env.db_path())
        .arg("SELECT group_concat(seq) FROM (SELECT seq FROM audit_events ORDER BY seq)")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "1,2,3,4,5,6,7,8,9"
    );
}

#[test]
fn help_documents_exit_codes_and_environment() {
    let env = Env::new();
    let out = env.run(&["--help"]).ok().stdout;
    for needle in ["Exit codes:", "MANDATE_DATA_DIR", "keychain unavailable"] {
        assert!(out.contains(needle), "{needle}: {out}");
    }
}

#[test]
fn scan_moves_one_credential_into_the_real_keychain_and_rewrites_its_line() {
    let env = Env::new();
    env.seed();
    let project = tempfile::tempdir().unwrap();
    // Built at run time: no literal here looks like a real token.
    let token = format!("ghp_{}", "Zq9".repeat(12));
    let stripe = format!("sk_live_{}", "4f".repeat(12));
    let env_file = project.path().join(".env");
    std::fs::write(
        &env_file,
        format!("GITHUB_TOKEN={token}\nSTRIPE_KEY={stripe}\nDEBUG=1\n"),
    )
    .unwrap();
    let root = project.path().to_str().unwrap();
    // Listing shows masked values only.
    let listed = env.run(&["scan", root]).ok().stdout;
    assert!(
        listed.contains(".env:1") && listed.contains(".env:2"),
        "{listed}"
    );
    assert!(
        !listed.contains(&token) && !listed.contains(&stripe),
        "{listed}"
    );
    // Bad places are usage errors or not-found, and change nothing.
    env.run(&["scan", root, "--move", ".env", "--to", "github"])
        .fails(2, "FILE:LINE");
    env.run(&["scan", root, "--move", ".env:3", "--to", "github"])
        .fails(4, "no credential was found at .env:3");
    env.run(&["scan", root, "--move", ".env:1"])
        .fails(2, "--to");
    assert!(std::fs::read_to_string(&env_file).unwrap().contains(&token));
    // The move itself: into the seeded `github` connection, the line rewritten.
    let moved = env
        .run(&[
            "scan",
            root,
            "--move",
            ".env:1",
            "--to",
            "github",
            "--rewrite-for",
            "billing-report-agent",
            "--json",
        ])
        .ok();
    assert!(!moved.stdout.contains(&token) && !moved.stderr.contains(&token));
    let v = moved.json();
    assert_eq!(v["connection"], "github");
    assert_eq!(v["rewritten"], true);
    let text = std::fs::read_to_string(&env_file).unwrap();
    assert!(!text.contains(&token), "{text}");
    assert!(
        text.starts_with("# GITHUB_TOKEN moved to the OS keychain by Mandate (connection 'github'); run the agent with: mandate exec billing-report-agent -- <command>\n"),
        "{text}"
    );
    assert!(
        text.ends_with(&format!("STRIPE_KEY={stripe}\nDEBUG=1\n")),
        "{text}"
    );
    // The connection now has its secret in the real Secret Service; the store never saw it.
    let c = env
        .run(&["connection", "show", "github", "--json"])
        .ok()
        .json();
    assert_eq!(c["has_secret"], true, "{c}");
    let db = std::fs::read(env.db_path()).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains(&token));
    let jsonl = project.path().join("audit.jsonl");
    env.run(&[
        "audit",
        "export",
        "--format",
        "jsonl",
        "--out",
        jsonl.to_str().unwrap(),
    ])
    .ok();
    let log = std::fs::read_to_string(&jsonl).unwrap();
    assert!(log.contains("credential.moved_to_keychain") && !log.contains(&token));
    // A new connection is made from the finding's preset.
    let v = env
        .run(&["scan", root, "--move", ".env:2", "--to", "stripe", "--json"])
        .ok()
        .json();
    assert_eq!(v["created_connection"], true);
    assert_eq!(v["rewritten"], false);
    assert!(
        v["next_step"]
            .as_str()
            .unwrap()
            .starts_with("Delete line 2 of .env (STRIPE_KEY)"),
        "{v}"
    );
    let c = env
        .run(&["connection", "show", "stripe", "--json"])
        .ok()
        .json();
    assert_eq!(c["base_url"], "https://api.stripe.com");
    assert_eq!(c["has_secret"], true);
}

#[test]
fn agent_add_sets_a_maximum_token_lifetime() {
    let env = Env::new();
    env.seed();
    let a = env
        .run(&[
            "agent",
            "add",
            "report-bot",
            "--owner",
            "founder",
            "--purpose",
            "weekly report",
            "--max-ttl",
            "5m",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(a["max_token_ttl_secs"], 300, "{a}");
    env.run(&[
        "agent",
        "add",
        "report-bot-2",
        "--owner",
        "founder",
        "--purpose",
        "x",
        "--max-ttl",
        "25h",
    ])
    .fails(3, "24 hours");
    env.run(&["agent", "show", "report-bot-2"]).fails(4, "");
}
