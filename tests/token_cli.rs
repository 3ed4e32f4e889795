//! The token endpoint's CLI through the real `mandate` binary and the real keychain:
//! `delegation add|list|revoke`, `jwks export`, and `serve` (prints its address; a second
//! `serve` on the same data folder says who holds it; a taken port fails closed).

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::fixture::Env;

#[test]
fn delegation_add_list_revoke() {
    let env = Env::new();
    env.seed();
    let out = env
        .run(&[
            "--json",
            "delegation",
            "add",
            "billing-report-agent",
            "--for",
            "founder",
            "--scope",
            "github:repo.read",
            "--until",
            "2h",
            "--task",
            "monthly report",
        ])
        .ok();
    let d = out.json();
    let id = d["id"].as_str().unwrap().to_string();
    assert_eq!(d["member"], "founder");
    assert_eq!(d["active"], true);
    // A scope the agent does not hold: refused with exit code 3 and a sentence saying why.
    env.run(&[
        "delegation",
        "add",
        "billing-report-agent",
        "--for",
        "founder",
        "--scope",
        "github:issues.write",
        "--until",
        "2h",
        "--task",
        "x",
    ])
    .fails(3, "holds no grant");
    let list = env.run(&["--json", "delegation", "list"]).ok().json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    env.run(&["delegation", "revoke", &id]).fails(2, "--reason");
    env.run(&["delegation", "revoke", &id, "--reason", "done"])
        .ok();
    let list = env
        .run(&["--json", "delegation", "list", "billing-report-agent"])
        .ok()
        .json();
    assert_eq!(list[0]["active"], false);
}

#[test]
fn jwks_export_writes_public_keys_only() {
    let env = Env::new();
    env.seed();
    let file = env.dir.path().join("jwks.json");
    env.run(&["jwks", "export", "--out", file.to_str().unwrap()])
        .ok();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let k = &v["keys"][0];
    assert_eq!(k["kty"], "OKP");
    assert_eq!(k["alg"], "EdDSA");
    assert!(k.get("d").is_none(), "a private part was exported");
}

#[test]
fn serve_prints_its_address_and_a_second_serve_names_the_holder() {
    let env = Env::new();
    env.seed();
    let mut first = env
        .cmd(&["serve", "--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(first.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().rsplit(':').next().unwrap().parse().unwrap();
    assert!(line.starts_with("Listening on http://127.0.0.1:"), "{line}");
    let second = env.run(&["serve", "--port", "0"]);
    assert_eq!(second.code, 5, "{}", second.stderr);
    assert!(
        second.stderr.contains(&format!("http://127.0.0.1:{port}")),
        "{}",
        second.stderr
    );
    assert!(
        second.stderr.contains(&first.id().to_string()),
        "{}",
        second.stderr
    );
    // Another data folder on the same port: the bind fails, with a clear message.
    let other = Env::new();
    other.seed();
    let r = other.run(&["serve", "--port", &port.to_string()]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stderr.contains("already in use"), "{}", r.stderr);
    let _ = first.kill();
    let _ = first.wait();
}
