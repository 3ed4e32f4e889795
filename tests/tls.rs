//! HTTPS on loopback with real processes and the real keychain: `mandate serve --tls --port 0`,
//! its certificate exported with `mandate tls export`, a reqwest client that trusts only that
//! certificate gets a token (assertion `aud` = the https token endpoint) and verifies it with
//! the JWKS fetched over HTTPS; a client that trusts the usual roots fails the handshake; plain
//! HTTP to the port gets no HTTP answer; the Host and Origin guards still answer over TLS;
//! `mandate token` finds the HTTPS endpoint and trusts only the data folder's certificate
//! (`mandate exec` refuses it, for now); and
//! Python (requests, Authlib, PyJWT) gets and verifies a token with `verify=cert.pem`.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{ChildStdout, Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use serde_json::{Value, json};

use crate::endpoint::{ASSERTION_TYPE, claims_of, enc, header_of, sign};
use crate::fixture::Env;
use crate::interop::{Running, interop_dir, python, run_json};

/// A running `mandate serve --tls`, what it printed, and its stdout kept open.
struct TlsServer {
    _child: Running,
    _stdout: BufReader<ChildStdout>,
    issuer: String,
    port: u16,
    cert_path: String,
    banner: String,
}

fn serve_tls(env: &Env) -> TlsServer {
    let mut child = env
        .cmd(&["serve", "--tls", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("mandate serve --tls");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let child = Running(child);
    let mut banner = String::new();
    while !banner.contains("SHA-256:") {
        let mut line = String::new();
        let n = out.read_line(&mut line).unwrap();
        assert!(n > 0, "serve --tls stopped; it printed: {banner}");
        banner.push_str(&line);
    }
    let field = |prefix: &str| {
        banner
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {banner}"))
            .trim()
            .to_string()
    };
    let issuer = field("Listening on ");
    let cert_path = field("Certificate: ");
    assert!(issuer.starts_with("https://127.0.0.1:"), "{banner}");
    let port = issuer.rsplit(':').next().unwrap().parse().unwrap();
    TlsServer {
        _child: child,
        _stdout: out,
        issuer,
        port,
        cert_path,
        banner,
    }
}

/// An agent whose private key the test holds (written by `--key-file`, JWK).
fn agent_with_key(env: &Env, name: &str) -> SigningKey {
    let file = env.dir.path().join(format!("{name}.jwk"));
    env.run(&[
        "agent",
        "add",
        name,
        "--owner",
        "founder",
        "--purpose",
        "tls test",
        "--scope",
        "github:repo.read",
        "--generate-key",
        "--key-file",
        file.to_str().unwrap(),
        "--key-format",
        "jwk",
    ])
    .ok();
    let jwk: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let d: [u8; 32] = B64
        .decode(jwk["d"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    SigningKey::from_bytes(&d)
}

fn assertion(agent: &str, key: &SigningKey, aud: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    sign(
        &json!({"alg": "EdDSA", "typ": "JWT",
                "kid": mandate_core::keys::thumbprint(&key.verifying_key())}),
        &json!({"iss": agent, "sub": agent, "aud": aud, "iat": now, "exp": now + 60,
                "jti": uuid_like()}),
        key,
    )
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "tls-{}-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn token_form(assertion: &str) -> String {
    format!(
        "grant_type=client_credentials&client_assertion_type={}&client_assertion={assertion}",
        enc(ASSERTION_TYPE)
    )
}

/// A reqwest client that trusts exactly `pem` (no built-in roots).
fn trusting(pem: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pem).unwrap())
        .timeout(std::time::Duration::from_secs(15))
        .build()
        .unwrap()
}

/// An error with its sources, where reqwest keeps the TLS reason.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(" / ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Verify an access token's EdDSA signature against a JWKS, by `kid`.
fn verify_with_jwks(token: &str, jwks: &Value) {
    let kid = header_of(token)["kid"].as_str().unwrap().to_string();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap_or_else(|| panic!("kid {kid} not in {jwks}"));
    let x: [u8; 32] = B64
        .decode(jwk["x"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let vk = VerifyingKey::from_bytes(&x).unwrap();
    let (input, sig) = token.rsplit_once('.').unwrap();
    let sig = Signature::from_slice(&B64.decode(sig).unwrap()).unwrap();
    vk.verify_strict(input.as_bytes(), &sig)
        .expect("the token's signature verifies with the JWKS fetched over HTTPS");
}

#[test]
fn https_clients_that_trust_the_exported_certificate_get_tokens_and_others_fail() {
    let env = Env::new();
    env.seed();
    let key = agent_with_key(&env, "tls-agent");
    let server = serve_tls(&env);
    assert!(
        server.banner.contains("(A new certificate"),
        "{}",
        server.banner
    );

    // The certificate clients trust: exported with `mandate tls export`, the same file serve
    // named, public only.
    let exported = env.dir.path().join("exported.pem");
    env.run(&["tls", "export", "--out", exported.to_str().unwrap()])
        .ok();
    let pem = std::fs::read(&exported).unwrap();
    assert_eq!(pem, std::fs::read(&server.cert_path).unwrap());
    let text = String::from_utf8(pem.clone()).unwrap();
    assert!(text.starts_with("-----BEGIN CERTIFICATE-----"), "{text}");
    assert!(!text.contains("PRIVATE KEY"));
    let stdout_export = env.run(&["tls", "export"]).ok().stdout;
    assert_eq!(stdout_export, text);

    let rt = rt();
    let client = trusting(&pem);
    let issuer = server.issuer.clone();
    let token_endpoint = format!("{issuer}/oauth2/token");
    rt.block_on(async {
        // Metadata: every URL is https on this port.
        let md: Value = client
            .get(format!("{issuer}/.well-known/oauth-authorization-server"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(md["issuer"], issuer.as_str());
        assert_eq!(md["token_endpoint"], token_endpoint.as_str());
        assert_eq!(
            md["jwks_uri"],
            format!("{issuer}/.well-known/jwks.json").as_str()
        );
        assert_eq!(
            md["introspection_endpoint"],
            format!("{issuer}/oauth2/introspect").as_str()
        );

        // A token, with the assertion addressed to the https token endpoint...
        let r = client
            .post(&token_endpoint)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(token_form(&assertion("tls-agent", &key, &token_endpoint)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        let token = body["access_token"].as_str().unwrap().to_string();
        let claims = claims_of(&token);
        assert_eq!(claims["iss"], issuer.as_str());
        assert_eq!(claims["sub"], "tls-agent");
        // ... or to the https issuer.
        let r = client
            .post(&token_endpoint)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(token_form(&assertion("tls-agent", &key, &issuer)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        // The plain-HTTP name of the same endpoint is not this server's audience.
        let http_endpoint = token_endpoint.replacen("https://", "http://", 1);
        let r = client
            .post(&token_endpoint)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(token_form(&assertion("tls-agent", &key, &http_endpoint)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");
        assert!(
            body["error_description"].as_str().unwrap().contains("aud"),
            "{body}"
        );

        // The JWKS over HTTPS verifies the token.
        let jwks: Value = client
            .get(md["jwks_uri"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        verify_with_jwks(&token, &jwks);

        // The guards are the same over TLS: a foreign Host is 421, a page's Origin is 403.
        let r = client
            .get(format!("{issuer}/.well-known/jwks.json"))
            .header("Host", "evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 421);
        let r = client
            .post(&token_endpoint)
            .header("Origin", "https://evil.example")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(token_form(&assertion("tls-agent", &key, &token_endpoint)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        assert!(r.headers().get("access-control-allow-origin").is_none());

        // A client that trusts the usual roots, not Mandate's certificate: the handshake fails.
        let stranger = reqwest::Client::builder().no_proxy().build().unwrap();
        let e = stranger
            .get(format!("{issuer}/.well-known/jwks.json"))
            .send()
            .await
            .expect_err("a client that does not trust the certificate must fail");
        let why = chain(&e);
        assert!(why.to_lowercase().contains("certificate"), "{why}");
        // A client trusting another certificate fails too.
        let other = another_installations_cert(&env);
        let e = trusting(&other)
            .get(format!("{issuer}/.well-known/jwks.json"))
            .send()
            .await
            .expect_err("a client that trusts another certificate must fail");
        assert!(chain(&e).to_lowercase().contains("certificate"), "{e}");
        // The failed handshakes did not hurt the server.
        let r = client
            .get(format!("{issuer}/.well-known/jwks.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    });

    // Plain HTTP to the TLS port: no HTTP answer at all.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(
        format!(
            "GET /.well-known/jwks.json HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            server.port
        )
        .as_bytes(),
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    assert!(
        !raw.starts_with(b"HTTP/"),
        "plain HTTP was answered: {}",
        String::from_utf8_lossy(&raw)
    );
    assert!(!String::from_utf8_lossy(&raw).contains("\"keys\""));
    // And reqwest over http:// fails as well.
    let e = rt.block_on(async {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!(
                "http://127.0.0.1:{}/.well-known/jwks.json",
                server.port
            ))
            .send()
            .await
            .and_then(|r| r.error_for_status())
    });
    assert!(e.is_err(), "plain HTTP got an answer: {e:?}");

    // The private key never reached the data folder.
    let out = Command::new("grep")
        .args(["-rl", "PRIVATE KEY"])
        .arg(env.data_dir())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "grep found a private key in: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // It is in the keychain, under this installation's service.
    assert!(
        env.keychain_listing().contains("tls-key/"),
        "{}",
        env.keychain_listing()
    );
}

/// The certificate of another installation (another data folder), as PEM.
fn another_installations_cert(_env: &Env) -> Vec<u8> {
    let other = Env::new();
    other.run(&["tls", "export"]).ok().stdout.into_bytes()
}

#[test]
fn mandate_token_finds_the_https_endpoint_and_trusts_only_its_certificate() {
    let env = Env::new();
    env.seed();
    let server = serve_tls(&env);
    // Found through the lock file: https, trusting the data folder's certificate.
    let out = env.run(&["token", "billing-report-agent"]).ok();
    let token = out.stdout.trim();
    assert_eq!(claims_of(token)["iss"], server.issuer.as_str());
    assert_eq!(claims_of(token)["sub"], "billing-report-agent");
    // The same with the port given.
    let port = server.port.to_string();
    env.run(&["token", "billing-report-agent", "--port", &port])
        .ok();
    // `mandate exec` hands programs plain-HTTP broker URLs: it refuses, with a sentence.
    env.run(&["exec", "billing-report-agent", "--", "true"])
        .fails(5, "serves HTTPS only");
    // A second serve names the https holder.
    let second = env.run(&["serve", "--tls", "--port", "0"]);
    assert_eq!(second.code, 5, "{}", second.stderr);
    assert!(second.stderr.contains(&server.issuer), "{}", second.stderr);
    // A restart reuses the certificate: clients keep trusting it.
    let before = std::fs::read(&server.cert_path).unwrap();
    drop(server);
    let server = serve_tls(&env);
    assert!(
        !server.banner.contains("(A new certificate"),
        "{}",
        server.banner
    );
    assert_eq!(std::fs::read(&server.cert_path).unwrap(), before);
    env.run(&["token", "billing-report-agent"]).ok();
    // Rotated while the server still presents the old certificate: `mandate token` trusts
    // only the new one in the data folder, so the handshake fails, with a sentence.
    env.run(&["tls", "rotate"]).ok();
    env.run(&["token", "billing-report-agent"])
        .fails(8, "over HTTPS");
    // Restarted with the new certificate: it works again.
    drop(server);
    let server = serve_tls(&env);
    env.run(&["token", "billing-report-agent"]).ok();
    drop(server);
}

#[test]
fn authlib_gets_a_token_over_https_with_verify_cert_pem() {
    let env = Env::new();
    env.seed();
    let key = env.dir.path().join("py.jwk");
    env.run(&[
        "agent",
        "add",
        "py-agent",
        "--owner",
        "founder",
        "--purpose",
        "tls interop",
        "--scope",
        "github:repo.read",
        "--generate-key",
        "--key-file",
        key.to_str().unwrap(),
        "--key-format",
        "jwk",
    ])
    .ok();
    let py = python();
    let server = serve_tls(&env);
    let cert = env.dir.path().join("mandate.pem");
    env.run(&["tls", "export", "--out", cert.to_str().unwrap()])
        .ok();
    let client = interop_dir().join("authlib_client.py");
    let (ok, v) = run_json(
        Command::new(&py)
            .arg(&client)
            .args([
                &server.issuer,
                "py-agent",
                key.to_str().unwrap(),
                "github:repo.read",
            ])
            .env("CA_FILE", &cert),
    );
    assert!(ok, "{v}");
    assert_eq!(v["claims"]["iss"], server.issuer.as_str());
    assert_eq!(v["claims"]["sub"], "py-agent");
    assert_eq!(v["claims"]["aud"], "https://api.github.com");
    // Without CA_FILE, requests trusts only the usual roots and refuses the certificate.
    let out = Command::new(&py)
        .arg(&client)
        .args([&server.issuer, "py-agent", key.to_str().unwrap()])
        .env_remove("CA_FILE")
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("SSL_CERT_FILE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CERTIFICATE_VERIFY_FAILED"), "{err}");
}
