//! The secret broker end to end: a real `mandate serve`, the real keychain, and a GitHub-shaped
//! upstream that is its own Python process on a loopback socket (`broker_upstream/upstream.py`,
//! which logs what it receives and echoes headers and sets cookies on purpose).
//!
//! What is proven: the real secret reaches the upstream and never the agent (response headers,
//! bodies, errors, the `mandate exec` child's environment); out-of-scope methods and paths are
//! refused and audited; path tricks cannot leave the base URL; suspension and revocation bite
//! on the next call; budgets refuse at the limit (essential actions keep the last 10%); rate
//! limits answer 429; and the issue's "done when": `mandate exec billing-report-agent --
//! python3 report.py`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::endpoint::{Resp, http};
use crate::fixture::Env;

const AGENT: &str = "billing-report-agent";
/// The founder's real GitHub key: must reach the upstream, and nothing else.
const SECRET: &str = "ghp_REALfounderKEY0123456789abcdefXYZ";

/// A child process we started, killed (by its own handle) when the test ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn upstream_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("broker_upstream")
}

/// An installation with a `github` connection (the preset, pointed at the test upstream), its
/// secret in the keychain, the agent with `repo.read` and `search.read`, and `mandate serve`.
struct Broker {
    env: Env,
    _serve: Running,
    _upstream: Running,
    port: u16,
    upstream_port: u16,
    log: PathBuf,
    /// The server's own log, written at TRACE (every crate) to catch anything it prints.
    serve_log: PathBuf,
}

fn first_line(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    line.trim().to_string()
}

/// Start the test upstream as its own process; it logs what it receives to `log`.
fn start_upstream(log: &Path) -> (Running, u16) {
    let mut up = Command::new("python3")
        .arg(upstream_dir().join("upstream.py"))
        .arg(log)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 upstream.py");
    let port: u16 = first_line(&mut up).parse().unwrap();
    (Running(up), port)
}

impl Broker {
    fn start(connection_flags: &[&str]) -> Self {
        Broker::start_with(connection_flags, &[])
    }

    /// [`Broker::start`] with extra environment variables for `mandate serve`.
    fn start_with(connection_flags: &[&str], serve_env: &[(&str, &str)]) -> Self {
        let env = Env::new();
        let log = env.dir.path().join("upstream.jsonl");
        let (upstream, upstream_port) = start_upstream(&log);
        let base = format!("http://127.0.0.1:{upstream_port}");
        env.run(&["member", "add", "founder"]).ok();
        let mut args = vec![
            "connection",
            "add",
            "github",
            "--preset",
            "github",
            "--base-url",
            &base,
        ];
        args.extend_from_slice(connection_flags);
        env.run(&args).ok();
        env.run_stdin(&["connection", "set-secret", "github"], SECRET.as_bytes())
            .ok();
        env.run(&[
            "agent",
            "add",
            AGENT,
            "--owner",
            "founder",
            "--purpose",
            "monthly billing report",
            "--scope",
            "github:repo.read",
            "--scope",
            "github:search.read",
            "--generate-key",
        ])
        .ok();
        let serve_log = env.dir.path().join("serve-trace.log");
        let mut serve = env
            .cmd(&["serve", "--port", "0"])
            .envs(serve_env.iter().copied())
            .env("MANDATE_LOG", "trace")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&serve_log).unwrap())
            .spawn()
            .expect("mandate serve");
        let line = first_line(&mut serve);
        let port: u16 = line.rsplit(':').next().unwrap().parse().unwrap();
        Broker {
            env,
            _serve: Running(serve),
            _upstream: upstream,
            port,
            upstream_port,
            log,
            serve_log,
        }
    }

    fn serve_log(&self) -> String {
        std::fs::read_to_string(&self.serve_log).unwrap_or_default()
    }

    fn token(&self) -> String {
        self.env
            .run(&["token", AGENT])
            .ok()
            .stdout
            .trim()
            .to_string()
    }

    fn call(&self, method: &str, path: &str, token: &str, extra: &[(&str, &str)]) -> Resp {
        let auth = format!("Bearer {token}");
        let mut h: Vec<(&str, &str)> = vec![("Authorization", &auth)];
        h.extend_from_slice(extra);
        http(self.port, method, path, &h, "")
    }

    /// What the upstream received, one JSON object per request.
    fn seen(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// `proxy.*` audit events: (action, decision, actor name, details).
    fn proxy_events(&self) -> Vec<(String, String, String, Value)> {
        let o = crate::fixture::sqlite3(self.env.db_path())
            .arg(
                "SELECT json_object('a', action, 'd', decision, 'e', json(CAST(body AS TEXT))) \
                 FROM audit_events WHERE action LIKE 'proxy.%' ORDER BY seq",
            )
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (
                    v["a"].as_str().unwrap().to_string(),
                    v["d"].as_str().unwrap().to_string(),
                    v["e"]["actor"]["name"].as_str().unwrap_or("").to_string(),
                    v["e"]["details"].clone(),
                )
            })
            .collect()
    }

    /// Wait until the audit trail holds `n` `proxy.completed` events (written when a
    /// response body ends).
    fn wait_completed(&self, n: usize) -> Vec<(String, String, String, Value)> {
        for _ in 0..100 {
            let ev = self.proxy_events();
            if ev.iter().filter(|e| e.0 == "proxy.completed").count() >= n {
                return ev;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!(
            "fewer than {n} proxy.completed events: {:?}",
            self.proxy_events()
        );
    }
}

#[track_caller]
fn assert_no_secret(r: &Resp) {
    let all = format!("{:?}\n{}", r.headers, r.body);
    assert!(!all.contains(SECRET), "the secret reached the agent: {all}");
    assert!(
        !all.contains("ghp_REAL"),
        "part of the secret reached the agent: {all}"
    );
}

#[test]
fn secret_reaches_the_upstream_and_never_the_agent() {
    let b = Broker::start(&[]);
    let t = b.token();
    let r = b.call(
        "GET",
        "/proxy/github/repos/acme/billing/issues?state=open",
        &t,
        &[("Cookie", "agent-cookie=1"), ("DPoP", "not-a-proof")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json().as_array().unwrap().len(), 2);
    assert_no_secret(&r);
    assert!(
        r.header("set-cookie").is_none(),
        "upstream cookies are dropped"
    );
    let seen = b.seen();
    assert_eq!(seen.len(), 1);
    let h = &seen[0]["headers"];
    assert_eq!(h["authorization"], format!("Bearer {SECRET}"));
    assert_eq!(seen[0]["target"], "/repos/acme/billing/issues?state=open");
    assert!(h.get("cookie").is_none() && h.get("dpop").is_none());
    assert_eq!(h["accept-encoding"], "identity");
    assert!(
        !seen[0].to_string().contains(&t),
        "the Mandate token went upstream"
    );

    // An upstream that echoes the credential (body and header): masked, same length.
    let r = b.call("POST", "/proxy/github/repos/acme/billing", &t, &[]);
    assert_eq!(r.status, 403, "POST is not repo.read: {}", r.body);
    let r = b.call("GET", "/proxy/github/repos/acme/billing", &t, &[]);
    assert_eq!(r.status, 200);
    assert_no_secret(&r);
    let echoed = r.json()["received"]["headers"]["authorization"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(echoed.len(), format!("Bearer {SECRET}").len());
    assert!(echoed.contains("****"), "{echoed}");
    assert!(r.header("x-echo-authorization").unwrap().contains("****"));

    // Every forwarded call is audited under the agent's name, with status, bytes, latency.
    let ev = b.wait_completed(2);
    let completed: Vec<_> = ev.iter().filter(|e| e.0 == "proxy.completed").collect();
    assert!(completed.iter().all(|e| e.2 == AGENT));
    let first = &completed[0].3;
    assert_eq!(first["upstream_status"], 200);
    assert!(
        completed.iter().all(|e| e.3["result"] == "completed"),
        "{completed:?}"
    );
    assert_eq!(first["action"], "github:repo.read");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["path"], "/repos/acme/billing/issues");
    assert!(first["bytes_received"].as_u64().unwrap() > 0);
    assert!(first["latency_ms"].is_u64());
    assert!(ev.iter().any(|e| e.0 == "proxy.allowed" && e.1 == "allow"));
    let trail = crate::fixture::sqlite3(b.env.db_path())
        .arg("SELECT CAST(body AS TEXT) FROM audit_events")
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&trail.stdout).contains(SECRET),
        "the secret is in the audit trail"
    );

    // The server's own log at TRACE, every crate included (hyper, reqwest, rustls): it
    // logged the calls, and holds neither the secret nor the agent's token.
    let log = b.serve_log();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "nothing was logged at TRACE, so this check proves nothing: {log}"
    );
    assert!(!log.contains(SECRET), "the secret is in the server's log");
    assert!(
        !log.contains("ghp_REAL"),
        "part of the secret is in the log"
    );
    // No JWT of any kind (tokens, assertions, DPoP proofs all start with `eyJ`), no form body.
    assert!(!log.contains("eyJ"), "a JWT is in the server's log");
    assert!(
        !log.contains("client_assertion="),
        "a token request body is in the log"
    );
    let signature = t.rsplit('.').next().unwrap();
    assert!(
        !log.contains(signature),
        "the agent's token is in the server's log"
    );
}

#[test]
fn upstream_redirects_are_returned_and_mapped_onto_the_proxy() {
    let b = Broker::start(&["--action", "redirects=GET:/*"]);
    b.env
        .run(&["agent", "edit", AGENT, "--add-scope", "github:redirects"])
        .ok();
    let t = b.token();
    let r = b.call("GET", "/proxy/github/redirect-inside", &t, &[]);
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location").unwrap(),
        format!(
            "http://127.0.0.1:{}/proxy/github/repos/acme/billing",
            b.port
        )
    );
    let r = b.call("GET", "/proxy/github/redirect-outside", &t, &[]);
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location").unwrap(), "https://evil.example/steal");
    assert_eq!(b.seen().len(), 2, "neither redirect was followed");
    assert_no_secret(&r);
}

#[test]
fn out_of_scope_calls_are_denied_and_audited() {
    let b = Broker::start(&[]);
    let t = b.token();
    let t = t.as_str();
    let cases: [(&str, &str, &str, u16, &str); 6] = [
        // (method, path, token, status, error)
        (
            "POST",
            "/proxy/github/repos/acme/billing/issues",
            t,
            403,
            "insufficient_scope",
        ),
        ("GET", "/proxy/github/user", t, 403, "insufficient_scope"),
        (
            "DELETE",
            "/proxy/github/repos/acme/billing",
            t,
            403,
            "insufficient_scope",
        ),
        (
            "GET",
            "/proxy/github/admin/keys",
            t,
            403,
            "insufficient_scope",
        ),
        (
            "GET",
            "/proxy/github/repos/acme/billing",
            "not-a-token",
            401,
            "invalid_token",
        ),
        (
            "GET",
            "/proxy/slack/conversations.list",
            t,
            404,
            "unknown_connection",
        ),
    ];
    for (method, path, token, status, error) in cases {
        let r = b.call(method, path, token, &[]);
        assert_eq!(r.status, status, "{method} {path}: {}", r.body);
        assert_eq!(r.error(), error, "{method} {path}");
        assert!(!r.json()["error_description"].as_str().unwrap().is_empty());
        assert_no_secret(&r);
    }
    let r = http(b.port, "GET", "/proxy/github/repos/acme/billing", &[], "");
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    assert!(b.seen().is_empty(), "nothing reached the upstream");
    let denied: Vec<_> = b
        .proxy_events()
        .into_iter()
        .filter(|e| e.0 == "proxy.denied")
        .collect();
    assert_eq!(denied.len(), 7, "{denied:?}");
    assert!(denied.iter().all(|e| e.1 == "deny"));
    let post = &denied[0];
    assert_eq!(post.2, AGENT);
    assert_eq!(post.3["method"], "POST");
    assert_eq!(post.3["path"], "/repos/acme/billing/issues");
    assert_eq!(post.3["error"], "insufficient_scope");
}

#[test]
fn path_tricks_cannot_escape_the_base_url() {
    let b = Broker::start(&[]);
    let t = b.token();
    for path in [
        "/proxy/github/repos/../admin",
        "/proxy/github/repos/%2e%2e/admin",
        "/proxy/github/repos/.%2E/%2e%2E/admin",
        "/proxy/github/repos/..;/admin",
        "/proxy/github/repos/a%2f..%2f..%2fadmin",
        "/proxy/github/repos/a%2F..%2Fadmin",
        "/proxy/github/repos//evil.example/x",
        "/proxy/github//evil.example/repos/a",
        "/proxy/github/repos/a%5c..%5cadmin",
        "/proxy/github/repos/%252e%252e/admin",
        "/proxy/github/repos/a/b%00",
    ] {
        let r = b.call("GET", path, &t, &[]);
        assert_eq!(r.status, 403, "{path}: {}", r.body);
        assert_eq!(r.error(), "path_not_allowed", "{path}");
    }
    let denied = b
        .proxy_events()
        .into_iter()
        .filter(|e| e.0 == "proxy.denied" && e.3["error"] == "path_not_allowed")
        .count();
    assert_eq!(denied, 11, "each refused trick is audited");
    // Characters the HTTP parser refuses never reach the broker at all.
    let r = b.call("GET", "/proxy/github/repos\\..\\admin", &t, &[]);
    assert!(r.status == 400 || r.status == 403, "{}", r.status);
    assert!(
        b.seen().is_empty(),
        "a trick reached the upstream: {:?}",
        b.seen()
    );

    // An absolute-form target naming another host is refused like a foreign Host (RFC 9112
    // §3.2.2 puts its authority above Host); one naming this endpoint goes to the
    // connection's base URL.
    let r = b.call(
        "GET",
        "http://evil.example/proxy/github/repos/acme/billing",
        &t,
        &[],
    );
    assert_eq!(r.status, 421, "{}", r.body);
    assert!(b.seen().is_empty(), "{:?}", b.seen());
    let r = b.call(
        "GET",
        &format!(
            "http://127.0.0.1:{}/proxy/github/repos/acme/billing",
            b.port
        ),
        &t,
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = b.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["path"], "/repos/acme/billing");
    assert_eq!(
        seen[0]["headers"]["host"],
        format!("127.0.0.1:{}", b.upstream_port)
    );
}

#[test]
fn suspension_and_revocation_bite_on_the_next_call() {
    let b = Broker::start(&[]);
    let t = b.token();
    let path = "/proxy/github/repos/acme/billing/issues";
    assert_eq!(b.call("GET", path, &t, &[]).status, 200);
    b.env
        .run(&["agent", "suspend", AGENT, "--reason", "investigating"])
        .ok();
    let r = b.call("GET", path, &t, &[]);
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.error(), "invalid_token");
    assert!(r.body.contains("suspended"), "{}", r.body);
    b.env.run(&["agent", "resume", AGENT]).ok();
    assert_eq!(b.call("GET", path, &t, &[]).status, 200);
    b.env
        .run(&["agent", "revoke", AGENT, "--reason", "key leaked"])
        .ok();
    let r = b.call("GET", path, &t, &[]);
    assert_eq!(r.status, 401);
    assert_no_secret(&r);
    assert_eq!(
        b.seen().len(),
        2,
        "only the calls before suspension and after resume"
    );
    let ev = b.proxy_events();
    let denied: Vec<_> = ev.iter().filter(|e| e.0 == "proxy.denied").collect();
    assert_eq!(denied.len(), 2);
    assert!(denied.iter().all(|e| e.2 == AGENT));
}

#[test]
fn budget_denies_at_the_limit_and_keeps_the_rest_for_essential_actions() {
    // repo.read is essential in the preset, search.read is not; 10 units a day.
    let b = Broker::start(&["--daily-budget", "10"]);
    let t = b.token();
    let read = "/proxy/github/repos/acme/billing/issues";
    let search = "/proxy/github/search/issues";
    for i in 0..8 {
        assert_eq!(b.call("GET", read, &t, &[]).status, 200, "call {i}");
    }
    assert_eq!(b.call("GET", search, &t, &[]).status, 200, "8 of 10 used");
    let r = b.call("GET", search, &t, &[]);
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.error(), "budget_reserved_for_essential");
    assert!(r.body.contains("90%"), "{}", r.body);
    assert_eq!(b.call("GET", read, &t, &[]).status, 200, "essential passes");
    let r = b.call("GET", read, &t, &[]);
    assert_eq!(r.status, 403);
    assert_eq!(r.error(), "budget_exhausted");
    assert!(r.body.contains("10 of 10"), "{}", r.body);
    assert_eq!(b.seen().len(), 10);

    let show = b.env.run(&["--json", "agent", "show", AGENT]).ok().json();
    let g = &show["budgets"][0];
    assert_eq!(g["connection"], "github");
    assert_eq!(g["daily_budget"], 10);
    assert_eq!(g["used"], 10);
    assert_eq!(g["calls"], 10);
    assert_eq!(g["denied"], 2);
    assert_eq!(g["state"], "exhausted");
    let text = b.env.run(&["agent", "show", AGENT]).ok().stdout;
    assert!(text.contains("10 of 10 units"), "{text}");
    assert!(text.contains("exhausted"), "{text}");

    // A person raises the budget: the next call passes.
    b.env
        .run(&["connection", "edit", "github", "--daily-budget", "20"])
        .ok();
    assert_eq!(b.call("GET", search, &t, &[]).status, 200);
}

#[test]
fn rate_limit_answers_429_with_retry_after() {
    let b = Broker::start(&["--rate-limit", "2"]);
    let t = b.token();
    let read = "/proxy/github/repos/acme/billing/issues";
    assert_eq!(b.call("GET", read, &t, &[]).status, 200);
    assert_eq!(b.call("GET", read, &t, &[]).status, 200);
    let r = b.call("GET", read, &t, &[]);
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.error(), "rate_limited");
    assert!(r.header("retry-after").is_some());
}

#[test]
fn credential_placements_header_basic_and_query() {
    let b = Broker::start(&[]);
    let t = b.token();
    let read = "/proxy/github/repos/acme/billing?api_key=agent-chosen";
    type Check<'a> = &'a dyn Fn(&Value) -> bool;
    let cases: [(&str, Check); 3] = [
        ("header:x-api-key", &|s: &Value| {
            s["headers"]["x-api-key"] == SECRET && s["headers"].get("authorization").is_none()
        }),
        ("basic", &|s: &Value| {
            use base64::Engine as _;
            let want = base64::engine::general_purpose::STANDARD.encode(format!("{SECRET}:"));
            s["headers"]["authorization"] == format!("Basic {want}")
        }),
        ("query:api_key", &|s: &Value| {
            s["query"] == format!("api_key={SECRET}") && s["headers"].get("authorization").is_none()
        }),
    ];
    for (auth, check) in cases {
        b.env
            .run(&["connection", "edit", "github", "--auth", auth])
            .ok();
        let r = b.call("GET", read, &t, &[("X-Api-Key", "agent-chosen")]);
        assert_eq!(r.status, 200, "{auth}: {}", r.body);
        assert_no_secret(&r);
        let seen = b.seen();
        let last = seen.last().unwrap();
        assert!(check(last), "{auth}: upstream saw {last}");
    }
}

#[test]
fn exec_runs_the_report_script_with_the_proxy_and_never_the_secret() {
    let b = Broker::start(&[]);
    let out = b.env.dir.path().join("report.json");
    let script = upstream_dir().join("report.py");
    // A founder's shell that exports the real key: it must not reach the program.
    let r = b.env.run_with_env(
        &[
            "exec",
            AGENT,
            "--",
            "python3",
            script.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
        &[("GITHUB_TOKEN", SECRET), ("MY_OLD_KEY", SECRET)],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.stdout.trim(), "2 open billing issues");
    assert!(!r.stdout.contains(SECRET) && !r.stderr.contains(SECRET));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(report["issues"].as_array().unwrap().len(), 2);
    let env = &report["env"];
    assert!(
        !report.to_string().contains(SECRET),
        "the child's environment or arguments held the secret"
    );
    let proxy = format!("http://127.0.0.1:{}/proxy/github", b.port);
    assert_eq!(env["MANDATE_GITHUB_URL"], proxy);
    assert_eq!(env["GITHUB_API_URL"], proxy);
    assert_eq!(env["MANDATE_AGENT"], AGENT);
    assert_eq!(
        env["GITHUB_TOKEN"], env["MANDATE_TOKEN"],
        "the SDK key is the Mandate token"
    );
    assert!(
        env.get("MY_OLD_KEY").is_none(),
        "an inherited real key was removed"
    );
    let token_file = PathBuf::from(env["MANDATE_TOKEN_FILE"].as_str().unwrap());
    assert!(!token_file.exists(), "the token file is removed at exit");
    // The upstream saw the real key; the audit trail shows the call under the agent's name.
    let seen = b.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0]["headers"]["authorization"],
        format!("Bearer {SECRET}")
    );
    let ev = b.wait_completed(1);
    let done = ev.iter().find(|e| e.0 == "proxy.completed").unwrap();
    assert_eq!(done.2, AGENT);
    assert_eq!(done.3["upstream_status"], 200);
    assert_eq!(done.3["path"], "/repos/acme/billing/issues");
}

#[test]
fn exec_child_env_holds_no_secret_and_the_token_file_is_private() {
    let b = Broker::start(&[]);
    let r = b.env.run_with_env(
        &[
            "exec",
            AGENT,
            "--",
            "sh",
            "-c",
            "env; stat -c 'MODE=%a' \"$MANDATE_TOKEN_FILE\"; \
             stat -c 'DIRMODE=%a' \"$(dirname \"$MANDATE_TOKEN_FILE\")\"; \
             test \"$(cat \"$MANDATE_TOKEN_FILE\")\" = \"$MANDATE_TOKEN\" && echo SAME",
        ],
        &[("OPENAI_API_KEY", SECRET)],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stdout.contains(SECRET), "{}", r.stdout);
    assert!(r.stdout.contains("MODE=600"), "{}", r.stdout);
    assert!(r.stdout.contains("DIRMODE=700"), "{}", r.stdout);
    assert!(r.stdout.contains("SAME"), "{}", r.stdout);
    assert!(r.stderr.contains("OPENAI_API_KEY"), "{}", r.stderr);
}

#[test]
fn exec_passes_the_exit_code_and_forwards_sigterm() {
    let b = Broker::start(&[]);
    let r = b.env.run(&["exec", AGENT, "--", "sh", "-c", "exit 7"]);
    assert_eq!(r.code, 7, "{}", r.stderr);
    let r = b.env.run(&["exec", AGENT, "--", "no-such-program-here"]);
    assert_eq!(r.code, 127, "{}", r.stderr);

    let ready = b.env.dir.path().join("ready");
    let mut child = b
        .env
        .cmd(&[
            "exec",
            AGENT,
            "--",
            "sh",
            "-c",
            &format!(
                "trap 'exit 42' TERM; touch {}; while :; do sleep 0.1; done",
                ready.display()
            ),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if ready.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(ready.exists(), "the program did not start");
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(42), "SIGTERM reached the program");
}

#[test]
fn exec_hands_the_database_url_over_only_under_its_connect_scope_and_audits_it() {
    let b = Broker::start(&[]);
    let url = "postgres://report:Wh5ecretPw@db.internal:5432/warehouse";
    b.env
        .run(&["connection", "add", "warehouse", "--kind", "database"])
        .ok();
    b.env
        .run_stdin(&["connection", "set-secret", "warehouse"], url.as_bytes())
        .ok();
    let print = "printf 'URL=%s\\n' \"${DATABASE_URL:-none}\"; env | grep -c Wh5ecretPw || true";
    // Not granted: the program does not get it.
    let r = b.env.run(&["exec", AGENT, "--", "sh", "-c", print]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("URL=none\n0"), "{}", r.stdout);
    // Granted: handed over as DATABASE_URL, said on stderr, audited without the value.
    b.env
        .run(&["agent", "edit", AGENT, "--add-scope", "warehouse:connect"])
        .ok();
    let r = b.env.run(&["exec", AGENT, "--", "sh", "-c", print]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with(&format!("URL={url}\n")),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr
            .contains("database connection 'warehouse' as DATABASE_URL"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains(url));
    // Asking for other scopes only: no URL.
    let r = b.env.run(&[
        "exec",
        AGENT,
        "--scope",
        "github:repo.read",
        "--",
        "sh",
        "-c",
        print,
    ]);
    assert!(r.stdout.starts_with("URL=none\n"), "{}", r.stdout);
    let o = crate::fixture::sqlite3(b.env.db_path())
        .arg(
            "SELECT action || ' ' || json_extract(CAST(body AS TEXT), '$.actor.name') || ' ' || \
             json_extract(CAST(body AS TEXT), '$.details.variable') FROM audit_events \
             WHERE action LIKE 'secret.%'",
        )
        .output()
        .unwrap();
    let events = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        events.trim(),
        format!("secret.handed_over {AGENT} DATABASE_URL"),
        "one hand-over, one event"
    );
    let db = std::fs::read(b.env.db_path()).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains("Wh5ecretPw"));
    // The broker does not call a database.
    let token = String::from_utf8(
        b.env
            .run(&["token", AGENT, "--scope", "warehouse:connect"])
            .ok()
            .stdout
            .into_bytes(),
    )
    .unwrap();
    let resp = b.call("GET", "/proxy/warehouse/x", token.trim(), &[]);
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert!(resp.body.contains("not_brokered"), "{}", resp.body);
}

#[test]
fn exec_keeps_the_token_file_fresh() {
    let b = Broker::start(&[]);
    b.env.run(&["agent", "edit", AGENT, "--max-ttl", "3s"]).ok();
    let r = b.env.run(&[
        "exec",
        AGENT,
        "--",
        "sh",
        "-c",
        "a=$(cat \"$MANDATE_TOKEN_FILE\"); sleep 2.5; b=$(cat \"$MANDATE_TOKEN_FILE\"); \
         [ -n \"$b\" ] && [ \"$a\" != \"$b\" ] && echo REFRESHED",
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("REFRESHED"), "{}", r.stdout);
}

#[test]
fn dpop_bound_tokens_need_a_fresh_proof_with_ath_and_the_bound_key() {
    use crate::endpoint::{Endpoint, b64, dpop_proof};
    use ed25519_dalek::SigningKey;
    use serde_json::json;
    use sha2::{Digest, Sha256};

    let mut ep = Endpoint::start();
    let log = ep.dir.path().join("upstream.jsonl");
    let (_upstream, uport) = start_upstream(&log);
    ep.m.add_connection(mandate_core::NewConnection {
        name: "local".into(),
        base_url: format!("http://127.0.0.1:{uport}"),
        actions: vec!["read=GET:/items/**".into()],
        trust_floor: None,
    })
    .unwrap();
    ep.m.set_connection_secret("local", SECRET.to_string().into())
        .unwrap();
    ep.add_agent("dpop-agent", &["local:read"], None);
    let key = SigningKey::from_bytes(&[7; 32]);
    let te = ep.token_endpoint();
    let proof = dpop_proof(&key, &te, |_, _| {});
    let r = ep.post_form(
        "/oauth2/token",
        &[("DPoP", &proof)],
        &ep.form(&ep.assertion("dpop-agent"), &[]),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["token_type"], "DPoP");
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    let path = "/proxy/local/items/1";
    let htu = format!("http://127.0.0.1:{}{path}", ep.port);
    let ath = b64(&Sha256::digest(token.as_bytes()));
    let good = |edit: &dyn Fn(&mut Value)| {
        dpop_proof(&key, &htu, |_, c| {
            c["htm"] = json!("GET");
            c["ath"] = json!(ath);
            edit(c);
        })
    };
    let call = |scheme: &str, proof: Option<&str>| {
        let auth = format!("{scheme} {token}");
        let mut h = vec![("Authorization", auth.as_str())];
        if let Some(p) = proof {
            h.push(("DPoP", p));
        }
        let r = ep.request("GET", path, &h, "");
        assert_no_secret(&r);
        r
    };
    let other = SigningKey::from_bytes(&[8; 32]);
    let by_other = dpop_proof(&other, &htu, |_, c| {
        c["htm"] = json!("GET");
        c["ath"] = json!(ath);
    });
    let refused = [
        ("bearer scheme", call("Bearer", None)),
        ("no proof", call("DPoP", None)),
        (
            "no ath",
            call(
                "DPoP",
                Some(&good(&|c| {
                    c.as_object_mut().unwrap().remove("ath");
                })),
            ),
        ),
        (
            "wrong ath",
            call("DPoP", Some(&good(&|c| c["ath"] = json!("AAAA")))),
        ),
        (
            "wrong htm",
            call("DPoP", Some(&good(&|c| c["htm"] = json!("POST")))),
        ),
        ("another key", call("DPoP", Some(&by_other))),
    ];
    for (name, r) in &refused {
        assert_eq!(r.status, 401, "{name}: {}", r.body);
        assert_eq!(r.error(), "invalid_dpop_proof", "{name}");
    }
    let proof = good(&|_| {});
    let r = call("DPoP", Some(&proof));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call("DPoP", Some(&proof));
    assert_eq!(r.status, 401, "a replayed proof: {}", r.body);
    let seen = std::fs::read_to_string(&log).unwrap();
    assert_eq!(seen.lines().count(), 1, "only the good call went upstream");
    assert!(seen.contains(&format!("Bearer {SECRET}")));
}

#[test]
fn request_bodies_reach_the_upstream_intact() {
    let b = Broker::start(&[]);
    b.env
        .run(&["agent", "edit", AGENT, "--add-scope", "github:issues.write"])
        .ok();
    let t = b.token();
    let body = r#"{"title":"Invoice for April","body":"été ✓"}"#;
    let auth = format!("Bearer {t}");
    let r = http(
        b.port,
        "POST",
        "/proxy/github/repos/acme/billing/issues",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_no_secret(&r);
    let seen = b.seen();
    assert_eq!(seen[0]["method"], "POST");
    assert_eq!(seen[0]["body"], body);
    assert_eq!(seen[0]["headers"]["content-type"], "application/json");
    let ev = b.wait_completed(1);
    let done = ev.iter().find(|e| e.0 == "proxy.completed").unwrap();
    assert_eq!(done.3["action"], "github:issues.write");
    assert_eq!(done.3["bytes_sent"], body.len());
}

/// Seen in a new user's walk: a sub-agent kept working while its parent was suspended. Through
/// the real `mandate serve`: the sub-agent's broker calls stop with a reason naming the parent
/// (audited with the chain), `mandate token` refuses it with exit code 9, and both work again
/// once the parent is resumed.
#[test]
fn a_suspended_parent_stops_its_sub_agent_at_the_broker_and_the_token_endpoint() {
    let b = Broker::start(&[]);
    b.env
        .run(&[
            "agent",
            "add",
            "report-helper",
            "--owner",
            "founder",
            "--purpose",
            "helps the billing report",
            "--parent",
            AGENT,
            "--scope",
            "github:repo.read",
            "--generate-key",
        ])
        .ok();
    let token = |who: &str| b.env.run(&["token", who]);
    let t = token("report-helper").ok().stdout.trim().to_string();
    assert_eq!(
        crate::endpoint::claims_of(&t)["mandate_parents"],
        serde_json::json!([AGENT])
    );
    let path = "/proxy/github/repos/acme/billing/issues";
    assert_eq!(b.call("GET", path, &t, &[]).status, 200);
    b.env
        .run(&["agent", "suspend", AGENT, "--reason", "investigating"])
        .ok();
    let r = b.call("GET", path, &t, &[]);
    assert_eq!(
        (r.status, r.error().as_str()),
        (401, "invalid_token"),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains(&format!("parent agent '{AGENT}' is suspended")),
        "{}",
        r.body
    );
    assert_no_secret(&r);
    token("report-helper").fails(9, &format!("parent agent '{AGENT}' is suspended"));
    let ev = b.proxy_events();
    let (_, _, actor, details) = ev.iter().rfind(|e| e.0 == "proxy.denied").unwrap();
    assert_eq!(actor, "report-helper");
    assert_eq!(details["parent_chain"], serde_json::json!([AGENT]));
    b.env.run(&["agent", "resume", AGENT]).ok();
    assert_eq!(b.call("GET", path, &t, &[]).status, 200);
    token("report-helper").ok();
    assert_eq!(
        b.seen().len(),
        2,
        "only the calls while the parent was active"
    );
}

/// Issue 19's "done when": a new agent calling an action marked `below-floor` waits; a person
/// approves it for an hour (here with the CLI; the app's inbox calls the same core function)
/// and the held call completes; the next calls within the hour pass without asking; a denial
/// is told to the agent with the person and the reason; every request and decision is audited.
#[test]
fn a_call_below_the_floor_waits_for_a_person_and_completes_once_approved_for_an_hour() {
    let b = Broker::start_with(
        &["--trust-floor", "TRUSTED"],
        &[("MANDATE_APPROVAL_HOLD_SECS", "30")],
    );
    // Below TRUSTED the call would be refused; repo.read asks a person instead.
    b.env
        .run(&[
            "connection",
            "edit",
            "github",
            "--action-approval",
            "repo.read=below-floor",
        ])
        .ok();
    let t = b.token();
    let port = b.port;
    let t2 = t.clone();
    let held = std::thread::spawn(move || {
        let started = std::time::Instant::now();
        let auth = format!("Bearer {t2}");
        let r = http(
            port,
            "GET",
            "/proxy/github/repos/acme/billing/issues",
            &[("Authorization", &auth)],
            "",
        );
        (r, started.elapsed())
    });
    // The request shows up for a person, naming who asks, what and why.
    let mut pending = Value::Null;
    for _ in 0..100 {
        let list = b.env.run(&["approvals", "list", "--json"]).ok().json();
        if let Some(first) = list.as_array().and_then(|a| a.first()) {
            pending = first.clone();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(pending["agent"], AGENT, "no request appeared: {pending}");
    assert_eq!(pending["action"], "github:repo.read");
    assert_eq!(pending["trust_state"], "PENDING");
    assert!(
        pending["why"]
            .as_str()
            .unwrap()
            .contains("requires at least TRUSTED"),
        "{pending}"
    );
    // The person sees the call itself, not only its action.
    assert!(
        pending["why"]
            .as_str()
            .unwrap()
            .starts_with("GET /repos/acme/billing/issues"),
        "{pending}"
    );
    std::thread::sleep(std::time::Duration::from_secs(1));
    let id = pending["id"].as_str().unwrap().to_string();
    b.env
        .run(&[
            "approvals",
            "approve",
            &id,
            "--for",
            "1h",
            "--as",
            "founder",
        ])
        .ok();
    let (r, waited) = held.join().unwrap();
    assert_eq!(r.status, 200, "the held call completes: {}", r.body);
    assert!(waited >= std::time::Duration::from_secs(1), "it waited");
    // Within the hour the same calls pass without asking again.
    let r = b.call("GET", "/proxy/github/repos/acme/billing/issues", &t, &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        b.env.run(&["approvals", "list", "--json"]).ok().json() == serde_json::json!([]),
        "nothing else waits"
    );
    let events = crate::fixture::sqlite3(b.env.db_path())
        .arg(
            "SELECT CAST(body AS TEXT) FROM audit_events WHERE action LIKE 'approval.%' \
             ORDER BY seq",
        )
        .output()
        .unwrap();
    let events: Vec<Value> = String::from_utf8_lossy(&events.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "approval.rule_set",
            "approval.requested",
            "approval.approved"
        ]
    );
    assert_eq!(events[1]["actor"]["name"], AGENT);
    assert_eq!(events[2]["actor"]["name"], "founder");
    assert!(events[2]["details"]["valid_until"].is_string());
    // The PDF report names the request and the person who answered it.
    let text = b.env.report_text();
    for needle in [
        "Approvals and attestations",
        "approval requested for github:repo.read",
        "approved until",
        "founder",
    ] {
        assert!(
            text.contains(needle),
            "the report lacks {needle:?}:\n{text}"
        );
    }
    let allowed = b
        .proxy_events()
        .into_iter()
        .filter(|e| e.0 == "proxy.allowed")
        .collect::<Vec<_>>();
    assert_eq!(allowed[0].3["approval"], id.as_str());
}

#[test]
fn an_unanswered_call_gets_approval_pending_with_an_id_and_a_denial_names_who_and_why() {
    let b = Broker::start_with(
        &["--trust-floor", "TRUSTED"],
        &[("MANDATE_APPROVAL_HOLD_SECS", "1")],
    );
    b.env
        .run(&["connection", "edit", "github", "--approval", "below-floor"])
        .ok();
    let t = b.token();
    let r = b.call("GET", "/proxy/github/repos/acme/billing/issues", &t, &[]);
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error"], "approval_pending");
    let id = r
        .header("mandate-approval")
        .expect("the id to retry with")
        .to_string();
    assert!(r.body.contains(&id), "{}", r.body);
    assert!(b.seen().is_empty(), "nothing reached the upstream");
    // Retrying with the id waits on the same request, and a denial is told with its reason.
    b.env
        .run(&[
            "approvals",
            "deny",
            &id,
            "--reason",
            "not during the audit freeze",
            "--as",
            "founder",
        ])
        .ok();
    let r = b.call(
        "GET",
        "/proxy/github/repos/acme/billing/issues",
        &t,
        &[("Mandate-Approval", &id)],
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "access_denied");
    assert!(r.body.contains("founder denied this call"), "{}", r.body);
    assert!(r.body.contains("not during the audit freeze"), "{}", r.body);
    let (_, _, _, details) = b.proxy_events().pop().unwrap();
    assert_eq!(details["error"], "access_denied");
    assert!(details.get("trust_gate").is_none(), "{details}");
    b.env
        .run(&["approvals", "approve", &id])
        .fails(5, "denied already");
}

/// A call refused because the agent is below the connection's floor only enforces its trust
/// verdict: the event says so (`trust_gate`), and behaviour does not count it as a new
/// denial. A person's "no" is a real denial and is not marked.
#[test]
fn a_refusal_at_the_trust_floor_is_audited_as_the_trust_gate_and_a_persons_denial_is_not() {
    let b = Broker::start_with(&[], &[]);
    // A token issued while the floor let the agent through; then the floor is raised.
    let t = b.token();
    b.env
        .run(&["connection", "edit", "github", "--trust-floor", "TRUSTED"])
        .ok();
    let r = b.call("GET", "/proxy/github/repos/acme/billing/issues", &t, &[]);
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error"], "access_denied");
    assert!(r.body.contains("TRUSTED"), "{}", r.body);
    let events = b.proxy_events();
    let (action, decision, _, details) = events.last().expect("the refusal is audited");
    assert_eq!(
        (action.as_str(), decision.as_str()),
        ("proxy.denied", "deny")
    );
    assert_eq!(details["trust_gate"], true, "{details}");
    assert!(b.seen().is_empty(), "nothing reached the upstream");
}

/// The server's thread count (Linux: `/proc/PID/status`).
fn threads_of(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// A burst of proxied calls ending at once used to hold a blocking-pool thread each while
/// `proxy.completed` waited for its commit, outside the server's work permits: the soak saw 48
/// threads where the permits allow 16, and resident memory that stayed up after each burst
/// (every thread has allocator caches of its own). Now the write takes a permit like every
/// other blocking write, so the thread count stays within the runtime's workers, the permits
/// and the server's few threads of its own, however many calls end together.
#[test]
fn a_burst_of_broker_calls_holds_no_more_threads_than_the_work_permits() {
    let b = Broker::start(&[]);
    let pid = b._serve.0.id();
    let t = b.token();
    let read = "/proxy/github/repos/acme/billing/issues";
    assert_eq!(b.call("GET", read, &t, &[]).status, 200);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    // Tokio's workers (one per core), the permits (4 per core, at least 16), and the
    // server's own: the main thread, the group commit, and a few started at launch. Twice the
    // permits again for Tokio's pool starting a thread for a permit passed on a moment before
    // the thread that gave it back was idle: measured 22 to 29 threads on a quiet machine and
    // 47 under CI's parallel tests on 2 cores. Unbounded, the same burst ran 110 threads.
    let permits = (cores * 4).max(16);
    let bound = cores + permits * 3 + 8;
    let calls = 200;
    // The upstream answers them all at once, when the last has arrived.
    let together = format!("/proxy/github/repos/acme/billing/together?n={calls}");
    let done = std::sync::atomic::AtomicBool::new(false);
    let (peak, statuses) = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(threads_of(pid));
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            peak
        });
        let clients: Vec<_> = (0..calls)
            .map(|_| s.spawn(|| b.call("GET", &together, &t, &[]).status))
            .collect();
        let statuses: Vec<u16> = clients.into_iter().map(|c| c.join().unwrap()).collect();
        b.wait_completed(calls + 1);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (sampler.join().unwrap(), statuses)
    });
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    eprintln!("{calls} broker calls ending together: at most {peak} threads (bound {bound})");
    assert!(
        peak <= bound,
        "mandate serve ran {peak} threads during {calls} concurrent broker calls; the work \
         permits allow {bound} ({cores} cores)"
    );
}
