//! What changes when the endpoint faces a network: HTTPS only off loopback, the public URL as
//! the only Host, a rate limit per source address, the server's identity recorded once; and
//! what a team server keeps in its token: secrets sealed in the database that the broker
//! opens for a remote agent, before and after both keys are rotated with servers running.

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::acceptance::{client_for, form, key_of, post};
use crate::fixture::{HOST, PORT, RemoteHost, Team, eventually, path_str, set_mode};

/// A loopback address of our own (all of 127/8 is this host), so tests never share a port.
fn loopback() -> Ipv4Addr {
    Ipv4Addr::new(127, 77, (std::process::id() % 250) as u8, 9)
}

#[test]
fn a_team_server_refuses_plain_http_off_loopback_a_foreign_public_url_and_an_uninitialised_store() {
    let team = Team::new();
    team.mandate(&["server", "--listen", "127.0.0.1:0"])
        .fails(5, "mandate server init");
    team.init();
    team.mandate(&["server", "--listen", "0.0.0.0:0"])
        .fails(5, "refusing to serve plain HTTP on 0.0.0.0:0");
    team.mandate(&[
        "server",
        "--listen",
        "127.0.0.1:0",
        "--public-url",
        "https://other.example:8443",
    ])
    .fails(5, "differs from this team server's public URL");
    team.mandate(&[
        "server",
        "init",
        "--public-url",
        "https://other.example",
        "--admin",
        "bob",
    ])
    .fails(5, "already a team server's");
    // A key file every user can read is refused, with the fix.
    set_mode(&team.path("server.key"), 0o644);
    team.mandate(&[
        "server",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        team.path("server.pem").to_str().unwrap(),
        "--tls-key",
        team.path("server.key").to_str().unwrap(),
    ])
    .fails(5, "chmod 600");
}

#[test]
fn only_the_public_urls_host_is_served_browsers_are_refused_and_each_source_has_a_limit() {
    let team = Team::new();
    team.init();
    // An MCP server behind the gateway: its protected-resource metadata names the public URL.
    team.mandate(&[
        "mcp",
        "add",
        "docs",
        "--url",
        "https://mcp.docs.example/mcp",
        "--no-read-tools",
    ])
    .ok();
    let ip = loopback();
    let server = team.start(ip, &["--source-rate-limit", "60"]);
    let c = client_for(&team, server.addr);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let md: serde_json::Value = c
            .get(format!(
                "{}/.well-known/oauth-authorization-server",
                team.public_url()
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(md["issuer"], team.public_url());
        assert_eq!(
            md["token_endpoint"],
            format!("{}/oauth2/token", team.public_url())
        );
        let prm: serde_json::Value = c
            .get(format!(
                "{}/.well-known/oauth-protected-resource/mcp/docs",
                team.public_url()
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(prm["resource"], format!("{}/mcp/docs", team.public_url()));
        assert_eq!(prm["authorization_servers"][0], team.public_url());
        // Another name for the same address (DNS rebinding, a misrouted proxy): 421.
        let r = c
            .get(format!("{}/.well-known/jwks.json", team.public_url()))
            .header("Host", format!("{ip}:{PORT}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 421);
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains(&format!("{HOST}:{PORT}")),
            "{body}"
        );
        // A browser page: 403, whatever the Host.
        let r = c
            .get(format!("{}/.well-known/jwks.json", team.public_url()))
            .header("Origin", "https://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        // The limit: a burst of 6 from this address (60 a minute), then 429 with Retry-After.
        let mut limited = None;
        for _ in 0..20 {
            let r = c
                .get(format!("{}/.well-known/jwks.json", team.public_url()))
                .send()
                .await
                .unwrap();
            if r.status() == 429 {
                limited = Some(r);
                break;
            }
        }
        let r = limited.expect("the per-source limit answered 429");
        assert!(r.headers().contains_key("retry-after"));
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "temporarily_unavailable");
    });
}

fn upstream_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("broker_upstream/upstream.py")
}

#[test]
fn a_remote_agent_reaches_an_api_through_the_team_broker_with_a_sealed_secret_across_rotations() {
    let team = Team::new();
    team.init();
    // The upstream API, on this host's loopback: the remote host cannot reach it directly.
    let log = team.path("upstream.log");
    let mut upstream = Command::new("python3")
        .arg(upstream_script())
        .arg(&log)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 upstream.py");
    let mut line = String::new();
    BufReader::new(upstream.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _upstream = KillOnDrop(upstream);
    let up_port: u16 = line.trim().parse().expect("upstream port");
    team.mandate(&[
        "connection",
        "add",
        "invoices",
        "--base-url",
        &format!("http://127.0.0.1:{up_port}"),
        "--action",
        "read=GET:/invoices/**",
    ])
    .ok();
    team.mandate(&[
        "agent",
        "edit",
        "billing-bot",
        "--add-scope",
        "invoices:read",
    ])
    .ok();
    let secret = "sk_live_team_secret_0123456789";
    let mut set = team
        .cmd(&["connection", "set-secret", "invoices"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        set.stdin
            .take()
            .unwrap()
            .write_all(secret.as_bytes())
            .unwrap();
    }
    assert!(set.wait().unwrap().success());
    // Sealed: nowhere in the database's files, in any spelling a reader would try.
    for f in std::fs::read_dir(team.data_dir()).unwrap() {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }

    let remote = RemoteHost::new();
    let home = remote.home.path();
    std::fs::copy(team.path("ca.pem"), home.join("team-ca.pem")).unwrap();
    std::fs::copy(team.path("billing-bot.pem"), home.join("bot.pem")).unwrap();
    set_mode(&home.join("bot.pem"), 0o600);
    let server = team.start(remote.server_ips[0], &[]);
    let call = |n: u32| {
        remote.mandate(&[
            "exec",
            "billing-bot",
            "--server",
            &team.public_url(),
            "--server-ca",
            &path_str(&home.join("team-ca.pem")),
            "--key-file",
            &path_str(&home.join("bot.pem")),
            "--scope",
            "invoices:read",
            "--",
            "sh",
            "-c",
            &format!(
                "curl -sS -f -H \"Authorization: Bearer $MANDATE_TOKEN\" \
                 \"$MANDATE_INVOICES_URL/invoices/{n}\" >/dev/null && echo reached"
            ),
        ])
    };
    let reached = |n: u32| {
        let r = call(n);
        assert_eq!(
            r.code,
            0,
            "{}\n{}\nserver log:\n{}",
            r.stderr,
            r.stdout,
            std::fs::read_to_string(team.path(&format!("server-{}.log", remote.server_ips[0])))
                .unwrap_or_default()
        );
        assert_eq!(r.stdout.trim(), "reached");
        // The upstream received the real secret for exactly this call.
        let log = std::fs::read_to_string(&log).unwrap();
        let entry = log
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["path"] == format!("/invoices/{n}"))
            .expect("the call reached the upstream");
        let auth = entry["headers"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            .map(|(_, v)| v.as_str().unwrap().to_string());
        assert_eq!(auth.as_deref(), Some(format!("Bearer {secret}").as_str()));
    };
    reached(1);

    // The same flows with a stock client: private_key_jwt and a DPoP-bound token, used at the
    // team broker with a fresh proof; the bound token sent as a Bearer token is refused.
    let dpop_key = home.join("dpop-bot.jwk");
    team.mandate(&[
        "agent",
        "add",
        "dpop-bot",
        "--owner",
        "alice",
        "--purpose",
        "reads invoices with bound tokens",
        "--scope",
        "invoices:read",
        "--generate-key",
        "--key-file",
        dpop_key.to_str().unwrap(),
        "--key-format",
        "jwk",
    ])
    .ok();
    team.mandate(&["agent", "edit", "dpop-bot", "--dpop-required", "true"])
        .ok();
    let py = crate::fixture::interop_python();
    let out = remote
        .cmd(
            std::path::Path::new(&py),
            &[
                &path_str(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("team/dpop_client.py")),
                &team.public_url(),
                "dpop-bot",
                &path_str(&dpop_key),
                &format!("{}/proxy/invoices/invoices/9", team.public_url()),
            ],
        )
        .env("CA_FILE", home.join("team-ca.pem"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["token_type"], "DPoP", "{v}");
    assert_eq!(v["cnf_jkt"], v["our_jkt"], "{v}");
    assert_eq!(v["dpop_status"], 200, "{v}");
    assert_eq!(v["bearer_status"], 401, "{v}");
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("/invoices/9")
    );

    // Rotate both keys while the server runs: the next calls still work, tokens signed
    // with the new issuer key verify, and the old sealing key is gone from the database.
    let sealed_key = || {
        let o = Command::new("sqlite3")
            .args(["-cmd", ".timeout 10000"])
            .arg(team.data_dir().join("mandate.db"))
            .arg("SELECT DISTINCT key_name FROM sealed_secrets")
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let before = sealed_key();
    // The connection's secret, and what a laptop keeps in its keychain besides (the audit
    // trail's tag key, the newest checkpoint's copy): every sealed row is sealed again.
    let sealed_rows = {
        let o = Command::new("sqlite3")
            .args(["-cmd", ".timeout 10000"])
            .arg(team.data_dir().join("mandate.db"))
            .arg("SELECT count(*) FROM sealed_secrets")
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    assert!(
        sealed_rows >= 2,
        "the secret and the audit tag key: {sealed_rows}"
    );
    let r = team
        .mandate(&["--json", "server", "rotate-secrets-key"])
        .ok()
        .json();
    assert_eq!(r["secrets"], sealed_rows);
    assert_eq!(r["retired"][0], before.as_str());
    assert_ne!(sealed_key(), before);
    reached(2);
    let rotated = team.mandate(&["--json", "jwks", "rotate"]).ok().json();
    let new_kid = rotated["kid"].as_str().unwrap().to_string();
    // Running instances look for a rotated key every few seconds.
    let key = key_of(&team, "billing-bot");
    let c = client_for(&team, server.addr);
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert!(eventually(Duration::from_secs(15), || {
        rt.block_on(async {
            let (s, v) = post(
                &c,
                &team,
                "/oauth2/token",
                form(
                    &team,
                    "billing-bot",
                    &key,
                    "/oauth2/token",
                    &[("grant_type", "client_credentials")],
                ),
            )
            .await;
            s == 200 && {
                let t = v["access_token"].as_str().unwrap();
                let h: serde_json::Value = serde_json::from_slice(
                    &base64::Engine::decode(
                        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                        t.split('.').next().unwrap(),
                    )
                    .unwrap(),
                )
                .unwrap();
                h["kid"] == new_kid.as_str()
            }
        })
    }));
    reached(3);
}

/// Ends a helper process however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
