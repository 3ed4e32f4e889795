//! The hostile input catalogue (issue 22 §5): requests an attacker on this computer, or a web
//! page in its browser, can send to the real `mandate serve` (real keychain, real SQLite file,
//! a real upstream process behind the broker), each with the exact status and error it must
//! get, as one table over raw bytes on a socket. Sections: HTTP framing (oversized heads and
//! bodies, malformed and smuggled chunking, HTTP/2 prefaces, absolute-form targets, methods),
//! Host and Origin (DNS rebinding, browser pages), client authentication (every JOSE attack in
//! `shared/SECURITY.md`), DPoP proofs, broker path tricks and proxied bodies over the limit.
//! Slow headers, idle keep-alive, silent and slow-body connections run at the same time from a
//! separate client (`hostile/slowloris.py`), over HTTP and over TLS, and must be closed within
//! the header deadline.
//!
//! Afterwards: the server still issues a token, no refused request changed the registry or
//! issued a token, every client-authentication denial is audited, nothing reached the upstream
//! that should not have, and the server's log (at debug) has no panic.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::SigningKey;
use mandate_core::keys;
use serde_json::{Value, json};

use crate::endpoint::{
    ASSERTION_TYPE, Resp, b64, dpop_proof, enc, hs256_with_public_key, now, parse_response, sign,
    unsigned,
};
use crate::fixture::Env;
use crate::interop::Running;

const AGENT: &str = "billing-report-agent";
/// The founder's GitHub key, which only the upstream may ever see.
const SECRET: &str = "ghp_HOSTILEfounderKEY0123456789abcdef";
/// The broker body limit the server runs with in this test.
const PROXY_LIMIT: usize = 64 * 1024;

/// What a case must get.
#[derive(Debug, Clone)]
enum Expect {
    /// This status and this `error` code (`""`: any body, e.g. hyper's own empty answer to a
    /// malformed head, or a success).
    Status(u16, &'static str),
    /// This status and a JSON `error` of any code (the code is not settled yet).
    AnyError(u16),
    /// The connection is closed without an HTTP answer.
    Closed,
}

struct Case {
    section: &'static str,
    name: String,
    raw: Vec<u8>,
    expect: Expect,
}

/// A running `mandate serve` over an installation made for this catalogue.
struct Target {
    env: Env,
    port: u16,
    keys: HashMap<&'static str, SigningKey>,
    log: PathBuf,
    upstream_log: PathBuf,
    _serve: Running,
    _upstream: Running,
    counter: std::cell::Cell<u64>,
}

fn first_line(child: &mut std::process::Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    line.trim().to_string()
}

/// An agent whose private key the test holds (a JWK key file).
fn agent_with_key(env: &Env, name: &str, scopes: &[&str]) -> SigningKey {
    let file = env.dir.path().join(format!("{name}.jwk"));
    let mut args = vec![
        "agent",
        "add",
        name,
        "--owner",
        "founder",
        "--purpose",
        "hostile input",
        "--generate-key",
        "--key-file",
        file.to_str().unwrap(),
        "--key-format",
        "jwk",
    ];
    for s in scopes {
        args.extend(["--scope", s]);
    }
    env.run(&args).ok();
    let jwk: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let d: [u8; 32] = B64
        .decode(jwk["d"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    SigningKey::from_bytes(&d)
}

impl Target {
    fn start() -> Target {
        let env = Env::new();
        let upstream_log = env.dir.path().join("upstream.jsonl");
        let mut up = Command::new("python3")
            .arg(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("broker_upstream")
                    .join("upstream.py"),
            )
            .arg(&upstream_log)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 upstream.py");
        let upstream_port: u16 = first_line(&mut up).parse().unwrap();
        let upstream = Running(up);
        env.run(&["member", "add", "founder"]).ok();
        let base = format!("http://127.0.0.1:{upstream_port}");
        env.run(&[
            "connection",
            "add",
            "github",
            "--preset",
            "github",
            "--base-url",
            &base,
        ])
        .ok();
        env.run_stdin(&["connection", "set-secret", "github"], SECRET.as_bytes())
            .ok();
        let mut keys = HashMap::new();
        keys.insert(
            AGENT,
            agent_with_key(&env, AGENT, &["github:repo.read", "github:issues.write"]),
        );
        for (name, how) in [("suspended-agent", "suspend"), ("revoked-agent", "revoke")] {
            keys.insert(name, agent_with_key(&env, name, &["github:repo.read"]));
            env.run(&["agent", how, name, "--reason", "hostile input catalogue"])
                .ok();
        }
        let log = env.dir.path().join("serve.log");
        let mut serve = env
            .cmd(&["serve", "--port", "0", "--no-rate-limit"])
            .env("MANDATE_LOG", "debug")
            .env("MANDATE_PROXY_MAX_BODY", PROXY_LIMIT.to_string())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("mandate serve");
        let line = first_line(&mut serve);
        let port = line.rsplit(':').next().unwrap().parse().unwrap();
        Target {
            env,
            port,
            keys,
            log,
            upstream_log,
            _serve: Running(serve),
            _upstream: upstream,
            counter: std::cell::Cell::new(0),
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn te(&self) -> String {
        format!("{}/oauth2/token", self.issuer())
    }

    fn kid(&self, agent: &str) -> String {
        keys::thumbprint(&self.keys[agent].verifying_key())
    }

    fn claims(&self, agent: &str) -> Value {
        self.counter.set(self.counter.get() + 1);
        let t = now();
        json!({
            "iss": agent, "sub": agent, "aud": self.te(), "iat": t, "exp": t + 60,
            "jti": format!("hostile-{t}-{}", self.counter.get()),
        })
    }

    fn assertion_with(&self, agent: &str, edit: impl FnOnce(&mut Value, &mut Value)) -> String {
        let mut h = json!({"alg": "EdDSA", "typ": "JWT", "kid": self.kid(agent)});
        let mut c = self.claims(agent);
        edit(&mut h, &mut c);
        sign(&h, &c, &self.keys[agent])
    }

    fn assertion(&self, agent: &str) -> String {
        self.assertion_with(agent, |_, _| {})
    }

    fn form(&self, assertion: &str, extra: &[(&str, &str)]) -> String {
        let mut f = format!(
            "grant_type=client_credentials&client_assertion_type={}&client_assertion={assertion}",
            enc(ASSERTION_TYPE)
        );
        for (k, v) in extra {
            f.push_str(&format!("&{k}={}", enc(v)));
        }
        f
    }

    /// A well-formed request with our Host (unless `headers` has one), a Content-Length for
    /// a body, and `Connection: close`.
    fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Vec<u8> {
        let mut r = format!("{method} {target} HTTP/1.1\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            r.push_str(&format!("Host: {}\r\n", self.host()));
        }
        for (k, v) in headers {
            r.push_str(&format!("{k}: {v}\r\n"));
        }
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding"))
            && (method != "GET" || !body.is_empty())
        {
            r.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        r.push_str("Connection: close\r\n\r\n");
        let mut out = r.into_bytes();
        out.extend_from_slice(body);
        out
    }

    fn post_form(&self, path: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
        let mut h = vec![("Content-Type", "application/x-www-form-urlencoded")];
        h.extend_from_slice(headers);
        self.request("POST", path, &h, body.as_bytes())
    }

    /// A token for `AGENT` (asserts success).
    fn token(&self) -> String {
        let r = send(
            self.port,
            &self.post_form(
                "/oauth2/token",
                &[],
                &self.form(&self.assertion(AGENT), &[]),
            ),
        )
        .expect("an answer");
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["access_token"].as_str().unwrap().to_string()
    }

    fn sql(&self, query: &str) -> String {
        let o = crate::fixture::sqlite3(self.env.db_path())
            .arg(query)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}

/// Send raw bytes, read until the server closes; `None` when it closed without an answer.
fn send(port: u16, raw: &[u8]) -> Option<Resp> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // A server may answer (and close) before reading everything: ignore write errors.
    let _ = s.write_all(raw);
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    (!got.is_empty()).then(|| parse_response(&got))
}

fn chunked(parts: &[&str]) -> Vec<u8> {
    parts.concat().into_bytes()
}

/// The framing, method and target section.
fn http_cases(t: &Target) -> Vec<Case> {
    let host = t.host();
    let body = t.form(&t.assertion(AGENT), &[]);
    let form_ct = ("Content-Type", "application/x-www-form-urlencoded");
    let te = ("Transfer-Encoding", "chunked");
    let mut c = Vec::new();
    let mut add = |name: &str, raw: Vec<u8>, expect: Expect| {
        c.push(Case {
            section: "HTTP framing",
            name: name.into(),
            raw,
            expect,
        });
    };
    add(
        "one header of 40 KiB",
        t.request(
            "GET",
            "/.well-known/jwks.json",
            &[("X-Big", &"a".repeat(40 * 1024))],
            b"",
        ),
        Expect::Status(431, ""),
    );
    let many: Vec<(String, String)> = (0..150).map(|i| (format!("X-H{i}"), "1".into())).collect();
    let many_ref: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    add(
        "150 header fields",
        t.request("GET", "/.well-known/jwks.json", &many_ref, b""),
        Expect::Status(431, ""),
    );
    add(
        "a 40 KiB request target",
        t.request("GET", &format!("/{}", "a".repeat(40 * 1024)), &[], b""),
        Expect::Status(431, ""),
    );
    add(
        "garbage request line",
        b"GARBAGE\r\n\r\n".to_vec(),
        Expect::Status(400, ""),
    );
    add(
        "HTTP/1.2",
        format!("GET /.well-known/jwks.json HTTP/1.2\r\nHost: {host}\r\n\r\n").into_bytes(),
        Expect::Status(400, ""),
    );
    add(
        "NUL in a header value",
        format!("GET /.well-known/jwks.json HTTP/1.1\r\nHost: {host}\r\nX-A: a\0b\r\n\r\n")
            .into_bytes(),
        Expect::Status(400, ""),
    );
    add(
        "header line without a colon",
        format!("GET /.well-known/jwks.json HTTP/1.1\r\nHost: {host}\r\nBroken\r\n\r\n")
            .into_bytes(),
        Expect::Status(400, ""),
    );
    add(
        "space before the colon",
        format!("GET /.well-known/jwks.json HTTP/1.1\r\nHost : {host}\r\n\r\n").into_bytes(),
        Expect::Status(400, ""),
    );
    add(
        "obsolete line folding",
        format!("GET /.well-known/jwks.json HTTP/1.1\r\nHost: {host}\r\nX-A: a\r\n b\r\n\r\n")
            .into_bytes(),
        Expect::Status(400, ""),
    );
    add(
        "bare LF line endings",
        format!("GET /.well-known/jwks.json HTTP/1.1\nHost: {host}\nConnection: close\n\n")
            .into_bytes(),
        Expect::Status(200, ""),
    );
    add(
        "HTTP/2 prior-knowledge preface",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00".to_vec(),
        Expect::Closed,
    );
    add(
        "h2c upgrade request (answered as HTTP/1.1, never upgraded)",
        t.request(
            "GET",
            "/.well-known/jwks.json",
            &[
                ("Upgrade", "h2c"),
                ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"),
            ],
            b"",
        ),
        Expect::Status(200, ""),
    );
    add(
        "body over 16 KiB with Content-Length",
        t.request(
            "POST",
            "/oauth2/token",
            &[form_ct],
            "a".repeat(17 * 1024).as_bytes(),
        ),
        Expect::Status(413, "invalid_request"),
    );
    add(
        "Content-Length of 1 GB, no body sent",
        format!(
            "POST /oauth2/token HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: 1000000000\r\nConnection: close\r\n\r\n"
        )
        .into_bytes(),
        Expect::Status(413, "invalid_request"),
    );
    add(
        "chunked body over 16 KiB",
        t.request(
            "POST",
            "/oauth2/token",
            &[form_ct, te],
            &chunked(&[&format!("4400\r\n{}\r\n0\r\n\r\n", "a".repeat(0x4400))]),
        ),
        Expect::Status(413, "invalid_request"),
    );
    add(
        "chunk size that is not hex",
        t.request(
            "POST",
            "/oauth2/token",
            &[form_ct, te],
            b"zz\r\nabc\r\n0\r\n\r\n",
        ),
        Expect::Status(400, "invalid_request"),
    );
    add(
        "chunk without its CRLF",
        t.request(
            "POST",
            "/oauth2/token",
            &[form_ct, te],
            b"3\r\nabcdef\r\n0\r\n\r\n",
        ),
        Expect::Status(400, "invalid_request"),
    );
    add(
        "chunk size overflowing 64 bits",
        t.request(
            "POST",
            "/oauth2/token",
            &[form_ct, te],
            b"ffffffffffffffffff\r\na\r\n0\r\n\r\n",
        ),
        Expect::Status(400, "invalid_request"),
    );
    add(
        "Content-Length and Transfer-Encoding together (smuggling)",
        format!(
            "POST /oauth2/token HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n"
        )
        .into_bytes(),
        Expect::Status(400, ""),
    );
    add(
        "two different Content-Length headers",
        format!(
            "POST /oauth2/token HTTP/1.1\r\nHost: {host}\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde"
        )
        .into_bytes(),
        Expect::Status(400, ""),
    );
    add(
        "negative Content-Length",
        format!("POST /oauth2/token HTTP/1.1\r\nHost: {host}\r\nContent-Length: -1\r\n\r\n")
            .into_bytes(),
        Expect::Status(400, ""),
    );
    add(
        "Transfer-Encoding other than chunked",
        format!(
            "POST /oauth2/token HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: gzip\r\n\r\nabc"
        )
        .into_bytes(),
        Expect::Status(400, ""),
    );
    add(
        "JSON body",
        t.request(
            "POST",
            "/oauth2/token",
            &[("Content-Type", "application/json")],
            b"{\"grant_type\":\"client_credentials\"}",
        ),
        Expect::Status(400, "invalid_request"),
    );
    add(
        "text/plain body (a browser's simple request)",
        t.request(
            "POST",
            "/oauth2/token",
            &[("Content-Type", "text/plain")],
            body.as_bytes(),
        ),
        Expect::Status(400, "invalid_request"),
    );
    add(
        "GET on the token endpoint",
        t.request("GET", "/oauth2/token", &[], b""),
        Expect::AnyError(405),
    );
    add(
        "TRACE on the token endpoint",
        t.request("TRACE", "/oauth2/token", &[], b""),
        Expect::AnyError(405),
    );
    add(
        "DELETE on the JWKS",
        t.request("DELETE", "/.well-known/jwks.json", &[], b""),
        Expect::AnyError(405),
    );
    add(
        "unknown path",
        t.request("GET", "/admin", &[], b""),
        Expect::Status(404, "invalid_request"),
    );
    add(
        "dot segments to the token endpoint",
        t.post_form("/oauth2/x/../token", &[], &body),
        Expect::Status(404, "invalid_request"),
    );
    add(
        "asterisk-form OPTIONS",
        format!("OPTIONS * HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").into_bytes(),
        Expect::Status(404, "invalid_request"),
    );
    add(
        "absolute-form target naming another host",
        t.post_form("http://evil.example/oauth2/token", &[], &body),
        Expect::Status(421, "access_denied"),
    );
    add(
        "absolute-form target naming another port",
        t.post_form(
            &format!("http://127.0.0.1:{}/oauth2/token", t.port.wrapping_add(1)),
            &[],
            &body,
        ),
        Expect::Status(421, "access_denied"),
    );
    add(
        "absolute-form target naming this endpoint",
        t.request(
            "GET",
            &format!("http://{host}/.well-known/jwks.json"),
            &[],
            b"",
        ),
        Expect::Status(200, ""),
    );
    add(
        "CONNECT to another host",
        b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n".to_vec(),
        Expect::Status(421, "access_denied"),
    );
    c
}

/// The Host and Origin section (DNS rebinding and browser pages).
fn host_origin_cases(t: &Target) -> Vec<Case> {
    let port = t.port;
    let body = t.form(&t.assertion(AGENT), &[]);
    let mut c = Vec::new();
    let mut add = |name: &str, raw: Vec<u8>, expect: Expect| {
        c.push(Case {
            section: "Host and Origin",
            name: name.into(),
            raw,
            expect,
        });
    };
    for (name, host, expect) in [
        (
            "DNS rebinding Host",
            format!("evil.example:{port}"),
            Expect::Status(421, "access_denied"),
        ),
        (
            "Host without the port",
            "127.0.0.1".to_string(),
            Expect::Status(421, "access_denied"),
        ),
        (
            "Host with another port",
            format!("127.0.0.1:{}", port.wrapping_add(1)),
            Expect::Status(421, "access_denied"),
        ),
        (
            "Host 127.0.0.2",
            format!("127.0.0.2:{port}"),
            Expect::Status(421, "access_denied"),
        ),
        (
            "Host localhost with a trailing dot",
            format!("localhost.:{port}"),
            Expect::Status(421, "access_denied"),
        ),
        (
            "Host in hex",
            format!("0x7f000001:{port}"),
            Expect::Status(421, "access_denied"),
        ),
        (
            "Host with a suffix",
            format!("127.0.0.1:{port}.evil.example"),
            Expect::Status(421, "access_denied"),
        ),
        (
            "Host with userinfo",
            format!("user@127.0.0.1:{port}"),
            Expect::Status(421, "access_denied"),
        ),
        (
            "Host [::1]",
            format!("[::1]:{port}"),
            Expect::Status(200, ""),
        ),
        (
            "Host LOCALHOST",
            format!("LOCALHOST:{port}"),
            Expect::Status(200, ""),
        ),
    ] {
        add(
            name,
            t.request("GET", "/.well-known/jwks.json", &[("Host", &host)], b""),
            expect,
        );
    }
    add(
        "no Host header (HTTP/1.0)",
        b"GET /.well-known/jwks.json HTTP/1.0\r\n\r\n".to_vec(),
        Expect::Status(400, "invalid_request"),
    );
    add(
        "two Host headers, one ours",
        format!(
            "GET /.well-known/jwks.json HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
        )
        .into_bytes(),
        Expect::Status(421, "access_denied"),
    );
    add(
        "foreign Origin on a token request",
        t.post_form(
            "/oauth2/token",
            &[("Origin", "https://evil.example")],
            &body,
        ),
        Expect::Status(403, "access_denied"),
    );
    add(
        "Origin null on a revocation (a sandboxed page's form)",
        t.post_form("/oauth2/revoke", &[("Origin", "null")], &body),
        Expect::Status(403, "access_denied"),
    );
    add(
        "our own Origin on a token request (a rebinding page)",
        t.post_form(
            "/oauth2/token",
            &[("Origin", &format!("http://127.0.0.1:{port}"))],
            &body,
        ),
        Expect::Status(403, "access_denied"),
    );
    add(
        "Origin on a JWKS read",
        t.request(
            "GET",
            "/.well-known/jwks.json",
            &[("Origin", "https://evil.example")],
            b"",
        ),
        Expect::Status(403, "access_denied"),
    );
    add(
        "Sec-Fetch-Site cross-site on a POST",
        t.post_form("/oauth2/token", &[("Sec-Fetch-Site", "cross-site")], &body),
        Expect::Status(403, "access_denied"),
    );
    add(
        "Sec-Fetch-Site cross-site on a GET",
        t.request(
            "GET",
            "/.well-known/jwks.json",
            &[("Sec-Fetch-Site", "cross-site")],
            b"",
        ),
        Expect::Status(200, ""),
    );
    add(
        "CORS preflight with Private Network Access",
        t.request(
            "OPTIONS",
            "/oauth2/token",
            &[
                ("Origin", "https://evil.example"),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Private-Network", "true"),
            ],
            b"",
        ),
        Expect::Status(403, "access_denied"),
    );
    add(
        "a broker call from a web page",
        t.request(
            "GET",
            "/proxy/github/repos/acme/x",
            &[("Origin", "https://evil.example")],
            b"",
        ),
        Expect::Status(403, "access_denied"),
    );
    c
}

/// Client authentication: every JOSE attack of SECURITY.md's table, at the token endpoint.
fn jose_cases(t: &Target, access_token: &str) -> Vec<Case> {
    let now_s = now();
    let te = t.te();
    let a = |f: &dyn Fn(&mut Value, &mut Value)| t.assertion_with(AGENT, f);
    let form = |assertion: String| t.form(&assertion, &[]);
    let pk = t.keys[AGENT].verifying_key().to_bytes();
    let hs256 = hs256_with_public_key(&t.claims(AGENT), &pk);
    let unsigned = unsigned(&t.claims(AGENT));
    let foreign = sign(
        &json!({"alg":"EdDSA","kid": t.kid(AGENT)}),
        &t.claims(AGENT),
        &keys::generate(),
    );
    let dup = {
        let c = t.claims(AGENT).to_string();
        let c = c.replacen('{', &format!("{{\"sub\":\"{AGENT}\","), 1);
        let input = format!(
            "{}.{}",
            b64(json!({"alg":"EdDSA"}).to_string().as_bytes()),
            b64(c.as_bytes())
        );
        let sig = ed25519_dalek::Signer::sign(&t.keys[AGENT], input.as_bytes());
        format!("{input}.{}", b64(&sig.to_bytes()))
    };
    let padded = {
        let good = t.assertion(AGENT);
        let (h, rest) = good.split_once('.').unwrap();
        format!("{h}==.{rest}")
    };
    let replayed = t.assertion(AGENT);
    let first = send(
        t.port,
        &t.post_form("/oauth2/token", &[], &form(replayed.clone())),
    )
    .unwrap();
    assert_eq!(first.status, 200, "{}", first.body);
    let mut cases: Vec<(&str, String, u16, &'static str)> = vec![
        (
            "assertion replayed (same jti)",
            form(replayed),
            401,
            "invalid_client",
        ),
        (
            "expired beyond the skew",
            form(a(&|_, c| {
                c["iat"] = json!(now_s - 300);
                c["exp"] = json!(now_s - 120);
            })),
            401,
            "invalid_client",
        ),
        (
            "exp missing",
            form(a(&|_, c| drop(c.as_object_mut().unwrap().remove("exp")))),
            401,
            "invalid_client",
        ),
        (
            "lifetime over the cap",
            form(a(&|_, c| {
                c["exp"] = json!(now_s + mandate_core::oauth::MAX_ASSERTION_LIFETIME_SECS + 300)
            })),
            401,
            "invalid_client",
        ),
        (
            "iat in the future",
            form(a(&|_, c| {
                c["iat"] = json!(now_s + 300);
                c["exp"] = json!(now_s + 320);
            })),
            401,
            "invalid_client",
        ),
        (
            "nbf in the future",
            form(a(&|_, c| c["nbf"] = json!(now_s + 300))),
            401,
            "invalid_client",
        ),
        (
            "jti missing",
            form(a(&|_, c| drop(c.as_object_mut().unwrap().remove("jti")))),
            401,
            "invalid_client",
        ),
        (
            "aud another issuer",
            form(a(&|_, c| c["aud"] = json!("https://evil.example"))),
            401,
            "invalid_client",
        ),
        (
            "aud array with a foreign value",
            form(a(&|_, c| c["aud"] = json!([te, "https://evil.example"]))),
            401,
            "invalid_client",
        ),
        (
            "aud missing",
            form(a(&|_, c| drop(c.as_object_mut().unwrap().remove("aud")))),
            401,
            "invalid_client",
        ),
        (
            "iss differs from sub",
            form(a(&|_, c| c["iss"] = json!("someone-else"))),
            401,
            "invalid_client",
        ),
        (
            "sub differs from client_id",
            t.form(&t.assertion(AGENT), &[("client_id", "other-agent")]),
            401,
            "invalid_client",
        ),
        ("alg none", form(unsigned), 401, "invalid_client"),
        (
            "alg HS256 keyed with the public key",
            form(hs256),
            401,
            "invalid_client",
        ),
        (
            "alg RS256",
            form(a(&|h, _| h["alg"] = json!("RS256"))),
            401,
            "invalid_client",
        ),
        (
            "alg ES256",
            form(a(&|h, _| h["alg"] = json!("ES256"))),
            401,
            "invalid_client",
        ),
        (
            "alg missing",
            form(a(&|h, _| drop(h.as_object_mut().unwrap().remove("alg")))),
            401,
            "invalid_client",
        ),
        (
            "kid path traversal",
            form(a(&|h, _| h["kid"] = json!("../../etc/passwd"))),
            401,
            "invalid_client",
        ),
        (
            "kid SQL",
            form(a(&|h, _| h["kid"] = json!("' OR 1=1 --"))),
            401,
            "invalid_client",
        ),
        (
            "kid 10 KB",
            form(a(&|h, _| h["kid"] = json!("k".repeat(10_000)))),
            401,
            "invalid_client",
        ),
        (
            "kid NUL",
            form(a(&|h, _| h["kid"] = json!("a\u{0}b"))),
            401,
            "invalid_client",
        ),
        (
            "kid odd Unicode",
            form(a(&|h, _| h["kid"] = json!("\u{202e}kid\u{fe0f}"))),
            401,
            "invalid_client",
        ),
        (
            "jku",
            form(a(&|h, _| h["jku"] = json!("https://evil.example/jwks"))),
            401,
            "invalid_client",
        ),
        (
            "x5u",
            form(a(&|h, _| h["x5u"] = json!("https://evil.example/cert"))),
            401,
            "invalid_client",
        ),
        (
            "jwk",
            form(a(&|h, _| h["jwk"] = json!({"kty":"OKP"}))),
            401,
            "invalid_client",
        ),
        (
            "x5c",
            form(a(&|h, _| h["x5c"] = json!(["MIIB"]))),
            401,
            "invalid_client",
        ),
        (
            "crit naming an unknown extension",
            form(a(&|h, _| h["crit"] = json!(["urn:x"]))),
            401,
            "invalid_client",
        ),
        ("duplicate JSON members", form(dup), 401, "invalid_client"),
        (
            "non-canonical base64url",
            form(padded),
            401,
            "invalid_client",
        ),
        (
            "an access token as the assertion",
            form(access_token.to_string()),
            401,
            "invalid_client",
        ),
        (
            "typ at+jwt",
            form(a(&|h, _| h["typ"] = json!("at+jwt"))),
            401,
            "invalid_client",
        ),
        (
            "typ dpop+jwt",
            form(a(&|h, _| h["typ"] = json!("dpop+jwt"))),
            401,
            "invalid_client",
        ),
        (
            "signed by another key",
            form(foreign),
            401,
            "invalid_client",
        ),
        (
            "unknown agent",
            form(sign(
                &json!({"alg":"EdDSA"}),
                &json!({"iss":"ghost-agent","sub":"ghost-agent","aud":te,"exp":now_s+60,"jti":"x"}),
                &t.keys[AGENT],
            )),
            401,
            "invalid_client",
        ),
        (
            "suspended agent",
            form(t.assertion("suspended-agent")),
            401,
            "invalid_client",
        ),
        (
            "revoked agent",
            form(t.assertion("revoked-agent")),
            401,
            "invalid_client",
        ),
        (
            "no client authentication",
            "grant_type=client_credentials".into(),
            401,
            "invalid_client",
        ),
        (
            "client secret instead",
            format!("grant_type=client_credentials&client_id={AGENT}&client_secret=x"),
            401,
            "invalid_client",
        ),
        (
            "wrong assertion type",
            format!(
                "grant_type=client_credentials&client_assertion_type=x&client_assertion={}",
                t.assertion(AGENT)
            ),
            401,
            "invalid_client",
        ),
        (
            "malformed assertion",
            form("not-a-jwt".into()),
            401,
            "invalid_client",
        ),
        (
            "missing grant_type",
            format!(
                "client_assertion_type={}&client_assertion={}",
                enc(ASSERTION_TYPE),
                t.assertion(AGENT)
            ),
            400,
            "invalid_request",
        ),
        (
            "unknown grant_type",
            "grant_type=password&username=a&password=b".into(),
            400,
            "unsupported_grant_type",
        ),
        (
            "repeated parameter",
            format!("{}&grant_type=client_credentials", form(t.assertion(AGENT))),
            400,
            "invalid_request",
        ),
        (
            "too many form fields",
            (0..40)
                .map(|i| format!("f{i}=1"))
                .collect::<Vec<_>>()
                .join("&"),
            400,
            "invalid_request",
        ),
        (
            "scope not granted",
            t.form(&t.assertion(AGENT), &[("scope", "github:admin")]),
            400,
            "invalid_scope",
        ),
        (
            "malformed scope",
            t.form(&t.assertion(AGENT), &[("scope", "*")]),
            400,
            "invalid_scope",
        ),
        (
            "unknown resource",
            t.form(&t.assertion(AGENT), &[("resource", "https://evil.example")]),
            400,
            "invalid_target",
        ),
        (
            "non-UTF-8 body",
            "grant_type=%FF%FE".into(),
            400,
            "unsupported_grant_type",
        ),
    ];
    // Introspection and revocation authenticate their callers the same way.
    let intro = |assertion: String| {
        format!(
            "client_assertion_type={}&client_assertion={assertion}&token={}",
            enc(ASSERTION_TYPE),
            enc(access_token)
        )
    };
    cases.push((
        "introspection without client authentication",
        format!("token={}", enc(access_token)),
        401,
        "invalid_client",
    ));
    cases.push((
        "introspection with alg none",
        intro(format!(
            "{}.{}.",
            b64(json!({"alg":"none"}).to_string().as_bytes()),
            b64(t.claims(AGENT).to_string().as_bytes())
        )),
        401,
        "invalid_client",
    ));
    let mut out: Vec<Case> = cases
        .into_iter()
        .map(|(name, body, status, error)| Case {
            section: "client authentication",
            name: name.into(),
            raw: t.post_form(
                if name.starts_with("introspection") {
                    "/oauth2/introspect"
                } else {
                    "/oauth2/token"
                },
                &[],
                &body,
            ),
            expect: Expect::Status(status, error),
        })
        .collect();
    out.push(Case {
        section: "client authentication",
        name: "revocation without client authentication".into(),
        raw: t.post_form(
            "/oauth2/revoke",
            &[],
            &format!("token={}", enc(access_token)),
        ),
        expect: Expect::Status(401, "invalid_client"),
    });
    out
}

/// DPoP proofs at the token endpoint (SECURITY.md's DPoP line).
fn dpop_cases(t: &Target) -> Vec<Case> {
    let key = keys::generate();
    let te = t.te();
    let now_s = now();
    let p = |f: &dyn Fn(&mut Value, &mut Value)| dpop_proof(&key, &te, f);
    let replayed = p(&|_, _| {});
    let ok = send(
        t.port,
        &t.post_form(
            "/oauth2/token",
            &[("DPoP", &replayed)],
            &t.form(&t.assertion(AGENT), &[]),
        ),
    )
    .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.body);
    let forged = dpop_proof(&keys::generate(), &te, |h, _| {
        h["jwk"]["x"] = json!(b64(key.verifying_key().as_bytes()))
    });
    let mut c = Vec::new();
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("two DPoP headers", vec![p(&|_, _| {}), p(&|_, _| {})]),
        ("malformed proof", vec!["not.a.proof".into()]),
        (
            "missing typ",
            vec![p(&|h, _| drop(h.as_object_mut().unwrap().remove("typ")))],
        ),
        (
            "missing alg",
            vec![p(&|h, _| drop(h.as_object_mut().unwrap().remove("alg")))],
        ),
        (
            "missing jwk",
            vec![p(&|h, _| drop(h.as_object_mut().unwrap().remove("jwk")))],
        ),
        (
            "missing jti",
            vec![p(&|_, c| drop(c.as_object_mut().unwrap().remove("jti")))],
        ),
        (
            "missing htm",
            vec![p(&|_, c| drop(c.as_object_mut().unwrap().remove("htm")))],
        ),
        (
            "missing htu",
            vec![p(&|_, c| drop(c.as_object_mut().unwrap().remove("htu")))],
        ),
        (
            "missing iat",
            vec![p(&|_, c| drop(c.as_object_mut().unwrap().remove("iat")))],
        ),
        ("typ JWT", vec![p(&|h, _| h["typ"] = json!("JWT"))]),
        ("alg none", vec![p(&|h, _| h["alg"] = json!("none"))]),
        ("alg HS256", vec![p(&|h, _| h["alg"] = json!("HS256"))]),
        ("signature by another key than its jwk", vec![forged]),
        (
            "jwk with a private part",
            vec![p(&|h, _| h["jwk"]["d"] = json!(b64(&[1; 32])))],
        ),
        ("wrong htm", vec![p(&|_, c| c["htm"] = json!("GET"))]),
        (
            "wrong htu",
            vec![p(&|_, c| {
                c["htu"] = json!("http://127.0.0.1:1/oauth2/token")
            })],
        ),
        (
            "iat an hour off",
            vec![p(&|_, c| c["iat"] = json!(now_s - 3600))],
        ),
        ("jti replayed", vec![replayed]),
    ];
    for (name, proofs) in cases {
        let headers: Vec<(&str, &str)> = proofs.iter().map(|p| ("DPoP", p.as_str())).collect();
        c.push(Case {
            section: "DPoP",
            name: name.into(),
            raw: t.post_form("/oauth2/token", &headers, &t.form(&t.assertion(AGENT), &[])),
            expect: Expect::Status(400, "invalid_dpop_proof"),
        });
    }
    c
}

/// Broker path tricks and bodies over the limit.
fn broker_cases(t: &Target, token: &str) -> Vec<Case> {
    let auth = format!("Bearer {token}");
    let mut c = Vec::new();
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
        "/proxy/github/repos/a/%0d%0aX-Injected:%201",
    ] {
        c.push(Case {
            section: "broker paths",
            name: format!("path {path}"),
            raw: t.request("GET", path, &[("Authorization", &auth)], b""),
            expect: Expect::Status(403, "path_not_allowed"),
        });
    }
    c.push(Case {
        section: "broker paths",
        name: "raw backslashes".into(),
        raw: t.request(
            "GET",
            "/proxy/github/repos\\..\\admin",
            &[("Authorization", &auth)],
            b"",
        ),
        expect: Expect::Status(403, "path_not_allowed"),
    });
    c.push(Case {
        section: "broker paths",
        name: "absolute-form target to the broker naming another host".into(),
        raw: t.request(
            "GET",
            "http://evil.example/proxy/github/repos/acme/billing",
            &[("Authorization", &auth)],
            b"",
        ),
        expect: Expect::Status(421, "access_denied"),
    });
    c.push(Case {
        section: "broker paths",
        name: "unknown connection".into(),
        raw: t.request(
            "GET",
            "/proxy/gitlab/projects",
            &[("Authorization", &auth)],
            b"",
        ),
        expect: Expect::Status(404, "unknown_connection"),
    });
    c.push(Case {
        section: "broker paths",
        name: "no token".into(),
        raw: t.request("GET", "/proxy/github/repos/acme/x", &[], b""),
        expect: Expect::AnyError(401),
    });
    let issue = "/proxy/github/repos/acme/billing/issues";
    let big = vec![b'a'; PROXY_LIMIT + 1];
    c.push(Case {
        section: "proxied bodies",
        name: "declared body over the broker limit".into(),
        raw: t.request(
            "POST",
            issue,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            &big,
        ),
        expect: Expect::Status(413, "invalid_request"),
    });
    let mut streamed = format!("{:x}\r\n", big.len()).into_bytes();
    streamed.extend_from_slice(&big);
    streamed.extend_from_slice(b"\r\n0\r\n\r\n");
    c.push(Case {
        section: "proxied bodies",
        name: "chunked body streamed past the broker limit".into(),
        raw: t.request(
            "POST",
            issue,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
                ("Transfer-Encoding", "chunked"),
            ],
            &streamed,
        ),
        expect: Expect::Status(413, "invalid_request"),
    });
    c
}

/// Run `hostile/slowloris.py` against `port` (over TLS with `cert`); its JSON report.
fn slowloris(port: u16, cert: Option<&str>) -> std::thread::JoinHandle<Value> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("hostile")
        .join("slowloris.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).arg(port.to_string()).args(["--each", "3"]);
    if let Some(c) = cert {
        cmd.args(["--tls", c]);
    }
    std::thread::spawn(move || {
        let out = cmd.output().expect("python3 slowloris.py");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "slowloris.py: {e}: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    })
}

/// Check a slowloris report: every connection of every kind closed within the bounds.
fn check_slow(report: &Value, over: &str, failures: &mut Vec<String>) -> usize {
    let bound = mandate_server::conn::HEADER_TIMEOUT.as_secs_f64();
    let deadline = mandate_server::REQUEST_TIMEOUT.as_secs_f64();
    let mut n = 0;
    for (kind, lo, hi, status) in [
        ("slow_headers", bound - 1.0, bound + 4.0, None),
        ("idle", bound - 1.0, bound + 4.0, None),
        ("silent", bound - 1.0, bound + 4.0, None),
        ("slow_body", deadline - 1.0, deadline + 4.0, Some("408")),
    ] {
        let conns = report[kind].as_array().cloned().unwrap_or_default();
        if conns.is_empty() {
            failures.push(format!(
                "{over}: no {kind} connections were reported: {report}"
            ));
        }
        for c in conns {
            n += 1;
            match c["closed_after"].as_f64() {
                Some(s) if (lo..=hi).contains(&s) => {}
                other => failures.push(format!(
                    "{over} {kind}: closed after {other:?} s, expected between {lo} and {hi}"
                )),
            }
            if let Some(want) = status {
                let got = c["status"].as_str().unwrap_or("");
                if !got.contains(want) {
                    failures.push(format!("{over} {kind}: answered {got:?}, expected {want}"));
                }
            }
        }
    }
    n
}

#[test]
fn hostile_input_catalogue() {
    let t = Target::start();
    // The same server over TLS (its own installation), for the slow connections after the
    // handshake.
    let tls_env = Env::new();
    tls_env.run(&["member", "add", "founder"]).ok();
    let mut tls_serve = tls_env
        .cmd(&["serve", "--tls", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("mandate serve --tls");
    let mut banner = String::new();
    let mut out = BufReader::new(tls_serve.stdout.take().unwrap());
    while !banner.contains("SHA-256:") {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "serve --tls stopped: {banner}"
        );
        banner.push_str(&line);
    }
    let _tls = Running(tls_serve);
    let field = |p: &str| {
        banner
            .lines()
            .find_map(|l| l.strip_prefix(p))
            .unwrap()
            .trim()
            .to_string()
    };
    let tls_port: u16 = field("Listening on ")
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let cert = field("Certificate: ");

    let started = Instant::now();
    let slow_http = slowloris(t.port, None);
    let slow_tls = slowloris(tls_port, Some(&cert));

    let before = (
        t.sql("SELECT count(*) FROM agents"),
        t.sql("SELECT count(*) FROM agent_keys"),
    );
    let access_token = t.token();
    let denials_before: i64 = t
        .sql("SELECT count(*) FROM audit_events WHERE action = 'token.denied'")
        .parse()
        .unwrap();
    let mut cases = http_cases(&t);
    cases.extend(host_origin_cases(&t));
    let jose = jose_cases(&t, &access_token);
    let jose_401 = jose
        .iter()
        .filter(|c| {
            matches!(c.expect, Expect::Status(401, _)) && c.raw.starts_with(b"POST /oauth2/token ")
        })
        .count();
    cases.extend(jose);
    cases.extend(dpop_cases(&t));
    // DPoP and JOSE set-up requests issued two tokens; nothing after this may.
    let tokens_after_setup = t.sql("SELECT count(*) FROM oauth_tokens");
    cases.extend(broker_cases(&t, &access_token));

    let mut failures = Vec::new();
    let mut sections: std::collections::BTreeMap<&str, usize> = Default::default();
    for c in &cases {
        *sections.entry(c.section).or_default() += 1;
        let got = send(t.port, &c.raw);
        let ok = match (&c.expect, &got) {
            (Expect::Closed, None) => true,
            (Expect::Status(s, e), Some(r)) => {
                r.status == *s
                    && (e.is_empty()
                        || serde_json::from_str::<Value>(&r.body)
                            .is_ok_and(|v| v["error"].as_str() == Some(*e)))
            }
            (Expect::AnyError(s), Some(r)) => {
                r.status == *s
                    && serde_json::from_str::<Value>(&r.body)
                        .is_ok_and(|v| v["error"].as_str().is_some_and(|e| !e.is_empty()))
            }
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "[{}] {}: expected {:?}, got {}",
                c.section,
                c.name,
                c.expect,
                got.as_ref()
                    .map(|r| format!(
                        "{} {}",
                        r.status,
                        r.body.chars().take(200).collect::<String>()
                    ))
                    .unwrap_or_else(|| "the connection closed without an answer".into())
            ));
        }
        if let Some(r) = &got {
            if r.headers
                .iter()
                .any(|(k, _)| k.to_ascii_lowercase().starts_with("access-control-"))
            {
                failures.push(format!(
                    "[{}] {}: a CORS header was sent",
                    c.section, c.name
                ));
            }
            for needle in ["eyJ", SECRET, "client_assertion=", "panicked"] {
                if r.body.contains(needle) {
                    failures.push(format!(
                        "[{}] {}: the answer holds {needle:?}",
                        c.section, c.name
                    ));
                }
            }
        }
    }

    // The slow connections, over HTTP and TLS, all closed in time.
    let slow = check_slow(&slow_http.join().unwrap(), "HTTP", &mut failures)
        + check_slow(&slow_tls.join().unwrap(), "TLS", &mut failures);
    *sections.entry("slow and idle connections").or_default() += slow;
    let total: usize = sections.values().sum();
    eprintln!(
        "hostile input catalogue: {total} requests in {:.1} s: {sections:?}",
        started.elapsed().as_secs_f64()
    );
    assert!(total >= 60, "the catalogue holds only {total} requests");

    // Nothing refused changed the registry or issued a token; every refused client
    // authentication at the token endpoint was audited with its reason.
    assert_eq!(
        before,
        (
            t.sql("SELECT count(*) FROM agents"),
            t.sql("SELECT count(*) FROM agent_keys")
        ),
        "a refused request changed the registry"
    );
    assert_eq!(
        t.sql("SELECT count(*) FROM oauth_tokens"),
        tokens_after_setup,
        "a refused request issued a token"
    );
    let denials: i64 = t
        .sql(
            "SELECT count(*) FROM audit_events WHERE action = 'token.denied' AND decision = 'deny' \
              AND json_extract(CAST(body AS TEXT), '$.reason') IS NOT NULL",
        )
        .parse()
        .unwrap();
    if ((denials - denials_before) as usize) < jose_401 {
        failures.push(format!(
            "only {} client-authentication refusals were audited, {jose_401} expected",
            denials - denials_before
        ));
    }
    // No trick reached the upstream, nor any whole body over the limit. A chunked body is
    // streamed, so the upstream may see the start of the one that went past the limit, cut
    // off before its last chunk (an incomplete request, which HTTP says to discard), never
    // more than the limit.
    let upstream = std::fs::read_to_string(&t.upstream_log).unwrap_or_default();
    for line in upstream.lines().filter(|l| !l.trim().is_empty()) {
        let rec: Value = serde_json::from_str(line).unwrap();
        let cut_off = rec["incomplete"] == json!(true)
            && rec["body_bytes"]
                .as_u64()
                .is_some_and(|n| n <= PROXY_LIMIT as u64);
        if !cut_off {
            failures.push(format!(
                "a request reached the upstream whole: {}",
                line.chars().take(300).collect::<String>()
            ));
        }
    }

    // The server still answers, and its log holds no panic and no secret.
    let _ = t.token();
    let log = std::fs::read_to_string(&t.log).unwrap();
    for needle in ["panicked", SECRET, "eyJ"] {
        if log.contains(needle) {
            failures.push(format!(
                "the server log ({}) holds {needle:?}",
                t.log.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
