//! Fixture for the token endpoint tests: a real server on 127.0.0.1:0 over a real SQLite file
//! (with the core's in-memory keychain), agents with known keys, assertions and DPoP proofs
//! built by hand so that every field can be broken, and a raw HTTP/1.1 client so that every
//! header (Host, Origin, two DPoP headers) is ours to set.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signer as _, SigningKey};
use mandate_core::audit::Actor;
use mandate_core::secret::MemoryKeychain;
use mandate_core::{KeyChoice, Mandate, NewAgent, NewConnection, OpenOptions, keys};
use mandate_server::{RunningServer, ServeOptions};
use serde_json::{Value, json};

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
pub const AGENT: &str = "billing-report-agent";
pub const GITHUB: &str = "https://api.github.com";

/// A raw HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or("").to_string()
    }
}

/// A running endpoint over a fresh data folder.
pub struct Endpoint {
    pub rt: tokio::runtime::Runtime,
    pub server: Option<RunningServer>,
    pub m: Arc<Mandate>,
    pub keychain: Arc<MemoryKeychain>,
    pub dir: tempfile::TempDir,
    pub keys: HashMap<String, SigningKey>,
    pub port: u16,
    counter: std::cell::Cell<u64>,
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// Sign a compact JWS with `key`, whatever the header says.
pub fn sign(header: &Value, claims: &Value, key: &SigningKey) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = key.sign(input.as_bytes());
    format!("{input}.{}", b64(&sig.to_bytes()))
}

/// The claims of a JWT (no verification).
pub fn claims_of(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64.decode(part).unwrap()).unwrap()
}

pub fn header_of(token: &str) -> Value {
    let part = token.split('.').next().unwrap();
    serde_json::from_slice(&B64.decode(part).unwrap()).unwrap()
}

impl Endpoint {
    /// A founder, the github connection, and the billing agent with a registered key.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keychain = Arc::new(MemoryKeychain::new());
        let m = open(dir.path(), &keychain);
        m.add_member("founder", None).unwrap();
        m.add_connection(NewConnection {
            name: "github".into(),
            base_url: GITHUB.into(),
            actions: vec![
                "repo.read=GET:/repos/**".into(),
                "issues.write=POST:/repos/*/*/issues".into(),
            ],
            trust_floor: None,
        })
        .unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut ep = Endpoint {
            rt,
            server: None,
            m,
            keychain,
            dir,
            keys: HashMap::new(),
            port: 0,
            counter: std::cell::Cell::new(0),
        };
        ep.add_agent(AGENT, &["github:repo.read", "github:issues.write"], None);
        ep.serve(0);
        ep
    }

    /// Register an agent with a fresh key whose private half the test keeps.
    pub fn add_agent(&mut self, name: &str, scopes: &[&str], parent: Option<&str>) {
        let sk = keys::generate();
        self.m
            .add_agent(NewAgent {
                name: name.into(),
                purpose: "test agent".into(),
                owner: "founder".into(),
                parent: parent.map(String::from),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                key: KeyChoice::Register {
                    public_key: keys::public_jwk(&sk.verifying_key()).to_string(),
                },
            })
            .unwrap();
        self.keys.insert(name.into(), sk);
    }

    pub fn serve(&mut self, port: u16) {
        let m = self.m.clone();
        let opts = ServeOptions {
            port,
            rate_limit: None,
            ..Default::default()
        };
        let s = self.rt.block_on(mandate_server::serve(m, opts)).unwrap();
        self.port = s.addr().port();
        self.server = Some(s);
    }

    /// Stop the server and open the data folder afresh (a process restart). The new server
    /// listens on a fresh port: rebinding the old one races with the other tests, which bind
    /// port 0 in parallel and may be handed it in between. `issuer()` and `token_endpoint()`
    /// follow the new port.
    pub fn restart(&mut self) {
        let s = self.server.take().unwrap();
        self.rt.block_on(s.shutdown()).unwrap();
        self.m = open(self.dir.path(), &self.keychain);
        self.serve(0);
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn token_endpoint(&self) -> String {
        format!("{}/oauth2/token", self.issuer())
    }

    pub fn fresh_jti(&self) -> String {
        self.counter.set(self.counter.get() + 1);
        format!("jti-{}-{}", now(), self.counter.get())
    }

    /// Default assertion claims for `agent`.
    pub fn claims(&self, agent: &str) -> Value {
        let t = now();
        json!({
            "iss": agent, "sub": agent, "aud": self.token_endpoint(),
            "iat": t, "exp": t + 60, "jti": self.fresh_jti(),
        })
    }

    pub fn kid(&self, agent: &str) -> String {
        keys::thumbprint(&self.keys[agent].verifying_key())
    }

    /// A good assertion for `agent`, after `edit` changes its header and claims.
    pub fn assertion_with(&self, agent: &str, edit: impl FnOnce(&mut Value, &mut Value)) -> String {
        let mut h = json!({"alg": "EdDSA", "typ": "JWT", "kid": self.kid(agent)});
        let mut c = self.claims(agent);
        edit(&mut h, &mut c);
        sign(&h, &c, &self.keys[agent])
    }

    pub fn assertion(&self, agent: &str) -> String {
        self.assertion_with(agent, |_, _| {})
    }

    /// `client_credentials` form body with `assertion` and extra fields.
    pub fn form(&self, assertion: &str, extra: &[(&str, &str)]) -> String {
        let mut f = format!(
            "grant_type=client_credentials&client_assertion_type={}&client_assertion={assertion}",
            enc(ASSERTION_TYPE)
        );
        for (k, v) in extra {
            f.push_str(&format!("&{k}={}", enc(v)));
        }
        f
    }

    /// An HTTP request with our Host unless `headers` set one.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
        http(self.port, method, path, headers, body)
    }

    pub fn post_form(&self, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
        let mut h = vec![("Content-Type", "application/x-www-form-urlencoded")];
        h.extend_from_slice(headers);
        self.request("POST", path, &h, body)
    }

    /// A token for `agent` with extra form fields; asserts success.
    pub fn token(&self, agent: &str, extra: &[(&str, &str)]) -> String {
        let r = self.post_form(
            "/oauth2/token",
            &[],
            &self.form(&self.assertion(agent), extra),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["access_token"].as_str().unwrap().to_string()
    }

    /// Introspect `token`, authenticated as `caller`.
    pub fn introspect(&self, caller: &str, token: &str) -> Resp {
        let body = format!(
            "client_assertion_type={}&client_assertion={}&token={}",
            enc(ASSERTION_TYPE),
            self.assertion(caller),
            enc(token)
        );
        self.post_form("/oauth2/introspect", &[], &body)
    }

    pub fn revoke(&self, caller: &str, token: &str) -> Resp {
        let body = format!(
            "client_assertion_type={}&client_assertion={}&token={}",
            enc(ASSERTION_TYPE),
            self.assertion(caller),
            enc(token)
        );
        self.post_form("/oauth2/revoke", &[], &body)
    }

    /// Actions of the newest `n` audit events, newest first.
    pub fn audit_actions(&self, n: u32) -> Vec<(String, String, Option<String>)> {
        self.m
            .audit_events(None, n, None)
            .unwrap()
            .into_iter()
            .map(|e| (e.action, e.decision.as_str().to_string(), e.reason))
            .collect()
    }

    pub fn count(&self, table: &str) -> i64 {
        rusqlite_count(&self.dir.path().join("mandate.db"), table)
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            let _ = self.rt.block_on(s.shutdown());
        }
    }
}

/// A raw HTTP/1.1 request to 127.0.0.1:`port`, with `Host: 127.0.0.1:PORT` unless `headers` set one.
pub fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    try_http(port, method, path, headers, body).unwrap()
}

/// [`http`], returning connection errors instead of panicking (for servers that may die).
pub fn try_http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: 127.0.0.1:{}\r\n", port));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method != "GET" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("Connection: close\r\n\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body.as_bytes())?;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    Ok(parse_response(&raw))
}

fn open(dir: &std::path::Path, keychain: &Arc<MemoryKeychain>) -> Arc<Mandate> {
    let kc: Arc<dyn mandate_core::secret::Keychain> = keychain.clone();
    Arc::new(Mandate::open(OpenOptions::new(dir, kc, Actor::app("test", "tests"))).unwrap())
}

fn rusqlite_count(db: &std::path::Path, table: &str) -> i64 {
    let o = crate::fixture::sqlite3(db)
        .arg(format!("SELECT count(*) FROM {table}"))
        .output()
        .expect("sqlite3");
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or(-1)
}

/// Percent-encode a form value.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn parse_response(raw: &[u8]) -> Resp {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A DPoP proof by `key` for POST to `htu`, after `edit`.
pub fn dpop_proof(
    key: &SigningKey,
    htu: &str,
    edit: impl FnOnce(&mut Value, &mut Value),
) -> String {
    let mut h = json!({
        "typ": "dpop+jwt", "alg": "EdDSA",
        "jwk": {"kty": "OKP", "crv": "Ed25519", "x": b64(key.verifying_key().as_bytes())},
    });
    let mut c = json!({
        "jti": format!("dpop-{}-{}", now(), uuid_like()),
        "htm": "POST", "htu": htu, "iat": now(),
    });
    edit(&mut h, &mut c);
    sign(&h, &c, key)
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The classic algorithm confusion: `claims` "signed" HS256 with the agent's public key as the
/// HMAC secret.
pub fn hs256_with_public_key(claims: &Value, public_key: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        b64(json!({"alg":"HS256","typ":"JWT"}).to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    format!(
        "{input}.{}",
        b64(&hmac_sha256(public_key, input.as_bytes()))
    )
}

/// `claims` with `alg: none` and an empty signature.
pub fn unsigned(claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64(json!({"alg":"none"}).to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// HMAC-SHA256, to forge the classic "HS256 keyed with the public key" assertion.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .to_vec()
}
